//! The real binary under SIGTERM and kill -9: a bounded shutdown that
//! records every call, and a restart that releases what a killed process
//! left reserved.

use std::{
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::{
    books::{balanced_books, books},
    chat_helpers::{mock_with_platform_key, PLATFORM_KEY},
    cli::keyward,
    helpers::{TestDb, PASSWORD, TEST_MASTER_KEY},
    mock::MockUpstream,
};

/// `keyward serve` as an operator runs it.
struct Server {
    child: Child,
    base: String,
}

impl Server {
    async fn start(database_url: &str, mock: &MockUpstream, env: &[(&str, &str)]) -> Self {
        // A free port, released for the server to take.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut command = Command::new(env!("CARGO_BIN_EXE_keyward"));
        command
            .arg("serve")
            .env("DATABASE_URL", database_url)
            .env("LEPTOS_SITE_ADDR", format!("127.0.0.1:{port}"))
            .env("KEYWARD_MASTER_KEY", TEST_MASTER_KEY)
            .env("ANTHROPIC_BASE_URL", &mock.url)
            .env("ANTHROPIC_API_KEY", PLATFORM_KEY)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        for (name, value) in env {
            command.env(name, value);
        }
        let child = command.spawn().expect("run keyward serve");
        let server = Self {
            child,
            base: format!("http://127.0.0.1:{port}"),
        };
        server.wait_until_ready().await;
        server
    }

    async fn wait_until_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(answer) = reqwest::get(format!("{}/healthz", self.base)).await {
                if answer.status() == StatusCode::OK {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("keyward serve never answered /healthz");
    }

    fn signal(&self, name: &str) {
        let sent = Command::new("kill")
            .args([format!("-{name}"), self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(sent.success());
    }

    /// Waits for the process to exit, failing after `limit`.
    async fn exit_within(mut self, limit: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "keyward still running after {limit:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn messages(&self, token: &str, body: &Value) -> reqwest::Response {
        reqwest::Client::new()
            .post(format!("{}/v1/messages", self.base))
            .header("x-api-key", token)
            .json(body)
            .send()
            .await
            .unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Creates the first (admin) account and a personal token with the CLI.
fn user_with_token(database_url: &str) -> String {
    let run = |args: &[&str], stdin: Option<&str>| {
        let out = keyward(database_url, args, stdin);
        assert!(out.status.success(), "keyward {args:?}");
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    };
    run(
        &[
            "create-user",
            "--email",
            "ada@example.com",
            "--password-stdin",
        ],
        Some(&format!("{PASSWORD}\n")),
    );
    run(
        &["issue-token", "--email", "ada@example.com", "--name", "cli"],
        None,
    )
}

fn stream_body(text: &str) -> Value {
    json!({
        "model": "claude-haiku-4-5",
        "max_tokens": 1000,
        "stream": true,
        "messages": [{ "role": "user", "content": text }],
    })
}

async fn open(database_url: &str) -> keyward::server::db::Db {
    keyward::server::db::connect(database_url).await.unwrap()
}

async fn sigterm_cuts_a_stream_after_the_grace_and_records_it(db: TestDb) {
    let mock = mock_with_platform_key();
    let database_url = db.fresh_url().await;
    let grace = 2;
    let server = Server::start(
        &database_url,
        &mock,
        &[
            ("KEYWARD_SHUTDOWN_GRACE_SECS", "2"),
            ("KEYWARD_FREE_MAX_TOKENS", "1000"),
        ],
    )
    .await;
    let token = user_with_token(&database_url);
    // About a minute of reply at 200 ms a word.
    let long = format!("mock:echo {}mock:slow", "word ".repeat(300));
    let mut response = server.messages(&token, &stream_body(&long)).await;
    let mut seen = String::new();
    while !seen.contains("content_block_delta") {
        seen.push_str(&String::from_utf8_lossy(
            &response.chunk().await.unwrap().unwrap(),
        ));
    }
    let signalled = Instant::now();
    server.signal("TERM");
    // The client keeps reading until the server cuts the stream.
    while let Ok(Some(_)) = response.chunk().await {}
    let status = server.exit_within(Duration::from_secs(grace + 5)).await;
    assert!(status.success(), "exit 0 after SIGTERM: {status:?}");
    assert!(
        signalled.elapsed() >= Duration::from_secs(grace - 1),
        "the call had its grace"
    );

    let db = open(&database_url).await;
    let rows: Vec<(String, i64, i64)> =
        sqlx::query_as("SELECT status, input_tokens, output_tokens FROM usage_ledger")
            .fetch_all(&db)
            .await
            .unwrap();
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0].0, "stopped");
    assert!(
        rows[0].1 > 0 && rows[0].2 > 1,
        "what it used is billed: {rows:?}"
    );
    let books = books(&db).await;
    assert!(books.balanced(), "{books:?}");
}

async fn sigterm_right_after_a_burst_writes_every_ledger_row(db: TestDb) {
    let mock = mock_with_platform_key();
    let database_url = db.fresh_url().await;
    let server = Server::start(
        &database_url,
        &mock,
        &[
            ("KEYWARD_FREE_REQUESTS_PER_DAY", "1000"),
            ("KEYWARD_FREE_REQUESTS_PER_MINUTE", "1000"),
        ],
    )
    .await;
    let token = user_with_token(&database_url);
    let body = json!({
        "model": "claude-haiku-4-5",
        "max_tokens": 50,
        "messages": [{ "role": "user", "content": "hi" }],
    });
    let calls = (0..40).map(|_| server.messages(&token, &body));
    let answers = futures::future::join_all(calls).await;
    assert!(answers.iter().all(|a| a.status() == StatusCode::OK));
    server.signal("TERM");
    let status = server.exit_within(Duration::from_secs(10)).await;
    assert!(status.success(), "{status:?}");
    let db = open(&database_url).await;
    let rows: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM usage_ledger")
        .fetch_one(&db)
        .await
        .unwrap();
    assert_eq!(rows, 40);
    let books = books(&db).await;
    assert!(books.balanced(), "{books:?}");
}

async fn a_process_killed_mid_call_blocks_no_one_after_a_restart(db: TestDb) {
    let mock = mock_with_platform_key();
    let database_url = db.fresh_url().await;
    let env = [
        ("KEYWARD_INSTANCE_ID", "kill-test"),
        ("KEYWARD_FREE_REQUESTS_PER_DAY", "1"),
    ];
    let server = Server::start(&database_url, &mock, &env).await;
    let token = user_with_token(&database_url);
    let body = json!({
        "model": "claude-haiku-4-5",
        "max_tokens": 50,
        "messages": [{ "role": "user", "content": "hi" }],
    });
    let in_flight = {
        let (token, base) = (token.clone(), server.base.clone());
        tokio::spawn(async move {
            reqwest::Client::new()
                .post(format!("{base}/v1/messages"))
                .header("x-api-key", token)
                .json(&json!({
                    "model": "claude-haiku-4-5",
                    "max_tokens": 50,
                    "messages": [{ "role": "user", "content": "mock:hang" }],
                }))
                .send()
                .await
        })
    };
    for _ in 0..300 {
        if !mock.received_on("/v1/messages").await.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let db = open(&database_url).await;
    assert_eq!(
        books(&db).await.open_reservations,
        1,
        "the call holds the day's one request"
    );
    server.signal("KILL");
    let _ = server.exit_within(Duration::from_secs(5)).await;
    assert!(
        in_flight.await.unwrap().is_err(),
        "the killed process never answered"
    );

    let restarted = Server::start(&database_url, &mock, &env).await;
    let released = books(&db).await;
    assert!(
        released.balanced(),
        "the restart released the dead call: {released:?}"
    );
    let answer = restarted.messages(&token, &body).await;
    assert_eq!(answer.status(), StatusCode::OK, "the user is not blocked");
    let after = balanced_books(&db).await;
    assert_eq!(after.requests, 1, "{after:?}");
}

async fn an_expired_reservation_is_released_by_any_instance(db: TestDb) {
    use keyward::server::db::{give_back, reservations, reserve_many, usage};
    let database_url = db.fresh_url().await;
    let db = open(&database_url).await;
    keyward::server::db::migrate(&db, keyward::server::db::Backend::of_url(&database_url))
        .await
        .unwrap();
    let user_id: i64 = sqlx::query_scalar(
        "INSERT INTO users (email, email_norm, password_hash, created_at) \
         VALUES ('x@example.com', 'x@example.com', 'x', 0) RETURNING id",
    )
    .fetch_one(&db)
    .await
    .unwrap();
    let limits = usage::Limits {
        requests_per_minute: Some(10),
        requests_per_day: Some(1),
        tokens_per_day: None,
    };
    let now = keyward::server::clock::system_now_ms();
    let tag = reservations::Tag {
        instance: "gone",
        expires_at: now - 1,
    };
    let held = reserve_many::reserve_one(&db, user_id, "2026-12-01", now, 500, limits, tag)
        .await
        .unwrap();
    assert!(held.is_ok());
    let full = reserve_many::reserve_one(&db, user_id, "2026-12-01", now, 500, limits, tag)
        .await
        .unwrap();
    assert!(full.is_err(), "the day's one request is held");
    let released = give_back::release_abandoned(&db, now, None).await.unwrap();
    assert_eq!(released, 1);
    let books = books(&db).await;
    assert_eq!(
        (books.requests, books.tokens, books.open_reservations),
        (0, 0, 0)
    );
    let again = reserve_many::reserve_one(&db, user_id, "2026-12-01", now, 500, limits, tag)
        .await
        .unwrap();
    assert!(again.is_ok(), "the user can call again");
}

crate::db_tests!(
    sigterm_cuts_a_stream_after_the_grace_and_records_it,
    sigterm_right_after_a_burst_writes_every_ledger_row,
    a_process_killed_mid_call_blocks_no_one_after_a_restart,
    an_expired_reservation_is_released_by_any_instance,
);
