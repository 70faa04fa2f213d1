//! The `keyward` command line, run as the real binary.

use std::{
    io::Write,
    process::{Command, Output, Stdio},
};

use reqwest::StatusCode;

use crate::helpers::{spawn_app_on, TestDb, PASSWORD, TEST_MASTER_KEY};

/// Runs a `keyward` command on `database_url`, feeding it `stdin`.
pub fn keyward(database_url: &str, args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_keyward"))
        .args(args)
        .env("DATABASE_URL", database_url)
        .env("KEYWARD_MASTER_KEY", TEST_MASTER_KEY)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run keyward");
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
    }
    drop(child.stdin.take());
    child.wait_with_output().unwrap()
}

/// `TOKEN=$(keyward issue-token …)` captures the token and nothing else,
/// even with info logs on: logs go to stderr, for every command.
#[tokio::test]
async fn issue_token_prints_only_the_token_on_stdout_whatever_the_log_level() {
    let url = TestDb::Sqlite.fresh_url().await;
    let created = keyward(
        &url,
        &[
            "create-user",
            "--email",
            "ops@example.com",
            "--password-stdin",
        ],
        Some(PASSWORD),
    );
    assert!(created.status.success());
    let out = Command::new(env!("CARGO_BIN_EXE_keyward"))
        .args(["issue-token", "--email", "ops@example.com", "--name", "ci"])
        .env("DATABASE_URL", &url)
        .env("KEYWARD_MASTER_KEY", TEST_MASTER_KEY)
        .env("RUST_LOG", "debug")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let token = stdout.trim_end();
    assert!(
        token.starts_with("kw_") && !token.contains(char::is_whitespace),
        "stdout is the token alone: {stdout:?}"
    );
    assert!(!out.stderr.is_empty(), "the logs went to stderr");
}

#[tokio::test]
async fn create_user_reads_password_from_stdin_and_can_log_in() {
    let url = TestDb::Sqlite.fresh_url().await;
    let out = keyward(
        &url,
        &[
            "create-user",
            "--email",
            "ops@example.com",
            "--password-stdin",
        ],
        Some(&format!("{PASSWORD}\n")),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("created admin ops@example.com"));

    let out = keyward(
        &url,
        &[
            "create-user",
            "--email",
            "second@example.com",
            "--password-stdin",
        ],
        Some(PASSWORD),
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("created user second@example.com"));

    let app = spawn_app_on(&url, &[]).await;
    assert_eq!(
        app.login("ops@example.com", PASSWORD).await.status(),
        StatusCode::OK
    );
    assert_eq!(app.get("/admin").await.status(), StatusCode::OK);
}

#[tokio::test]
async fn create_user_refuses_a_weak_password_with_a_clear_error() {
    let url = TestDb::Sqlite.fresh_url().await;
    let out = keyward(
        &url,
        &[
            "create-user",
            "--email",
            "ops@example.com",
            "--password-stdin",
        ],
        Some("short\n"),
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("at least 8 characters"));
}

#[tokio::test]
async fn disable_user_ends_sessions_and_enable_user_restores_login() {
    let url = TestDb::Sqlite.fresh_url().await;
    keyward(
        &url,
        &[
            "create-user",
            "--email",
            "bob@example.com",
            "--password-stdin",
        ],
        Some(PASSWORD),
    );
    let app = spawn_app_on(&url, &[]).await;
    app.login("bob@example.com", PASSWORD).await;
    assert_eq!(app.get("/chat").await.status(), StatusCode::OK);

    let out = keyward(&url, &["disable-user", "--email", "bob@example.com"], None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(app.get("/chat").await.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        app.login("bob@example.com", PASSWORD).await.status(),
        StatusCode::FORBIDDEN
    );

    let out = keyward(&url, &["enable-user", "--email", "bob@example.com"], None);
    assert!(out.status.success());
    assert_eq!(
        app.login("bob@example.com", PASSWORD).await.status(),
        StatusCode::OK
    );
}

#[test]
fn gen_master_key_prints_32_random_bytes_in_base64() {
    let first = keyward("sqlite::memory:", &["gen-master-key"], None);
    let second = keyward("sqlite::memory:", &["gen-master-key"], None);
    let first = String::from_utf8(first.stdout).unwrap();
    let second = String::from_utf8(second.stdout).unwrap();
    assert_eq!(first.trim().len(), 44);
    assert_ne!(first, second);
}

#[test]
fn bad_configuration_fails_fast_with_one_clear_line() {
    let out = keyward("mysql://nope", &["migrate"], None);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("DATABASE_URL") || stderr.contains("--database-url"),
        "{stderr}"
    );
    assert!(
        stderr.contains("expected `sqlite:PATH` or `postgres://"),
        "{stderr}"
    );

    let out = Command::new(env!("CARGO_BIN_EXE_keyward"))
        .args(["serve"])
        .env("DATABASE_URL", "sqlite::memory:")
        .env("LEPTOS_SITE_ADDR", "127.0.0.1:0")
        .env("KEYWARD_MASTER_KEY", "c2hvcnQ=")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("KEYWARD_MASTER_KEY: master key must be exactly 32 bytes, got 5"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("c2hvcnQ="),
        "the bad key is not echoed: {stderr}"
    );
    assert_eq!(
        stderr
            .trim()
            .lines()
            .filter(|l| l.starts_with("error"))
            .count(),
        1,
        "{stderr}"
    );
}

/// The environment of a running process, once `ready` accepts it.
fn environment_when(pid: u32, ready: impl Fn(&str) -> bool) -> String {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let raw = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
        let environment = String::from_utf8_lossy(&raw).replace('\0', "\n");
        if ready(&environment) || std::time::Instant::now() > deadline {
            return environment;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

#[tokio::test]
async fn the_server_runs_with_its_allocator_options_unless_the_operator_set_them() {
    let database_url = TestDb::Sqlite.fresh_url().await;
    // The allocator settings `keyward serve` ends up running with.
    let settings = |operator_purge_delay: Option<&str>| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_keyward"));
        command
            .arg("serve")
            .env("DATABASE_URL", &database_url)
            .env("LEPTOS_SITE_ADDR", "127.0.0.1:0")
            .env("KEYWARD_MASTER_KEY", TEST_MASTER_KEY)
            .env("RUST_LOG", "warn")
            .env_remove("MIMALLOC_PURGE_DELAY")
            .env_remove("MIMALLOC_ARENA_EAGER_COMMIT")
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if let Some(value) = operator_purge_delay {
            command.env("MIMALLOC_PURGE_DELAY", value);
        }
        let mut child = command.spawn().expect("run keyward");
        let environment = environment_when(child.id(), |env| env.contains("MIMALLOC_ARENA"));
        let _ = child.kill();
        let _ = child.wait();
        environment
            .lines()
            .filter(|line| line.starts_with("MIMALLOC_"))
            .map(str::to_owned)
            .collect::<std::collections::BTreeSet<_>>()
    };
    let expected = |purge_delay: &str| {
        [
            "MIMALLOC_ARENA_EAGER_COMMIT=0".to_owned(),
            format!("MIMALLOC_PURGE_DELAY={purge_delay}"),
        ]
        .into()
    };
    assert_eq!(settings(None), expected("0"));
    assert_eq!(settings(Some("250")), expected("250"));
}
