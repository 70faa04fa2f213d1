//! Master keys across restarts, and `keyward rotate-keys` while keys are stored.

use reqwest::StatusCode;

use crate::{
    db_tests,
    helpers::{spawn_app_on, spawn_app_with, TestApp, TestDb, PASSWORD, TEST_MASTER_KEY},
    mock::{MockUpstream, VALID_KEY},
};

const NEW_MASTER_KEY: &str = "bmV3LW1hc3Rlci1rZXktZm9yLXJvdGF0aW9uLXRlc3Q=";
const UNRELATED_MASTER_KEY: &str = "dW5yZWxhdGVkLW1hc3Rlci1rZXktbm90LWNvbmZpZ2Q=";

async fn key_health(app: &TestApp) -> serde_json::Value {
    app.login("ada@example.com", PASSWORD).await;
    let status: serde_json::Value = app.call("keys/status", &[]).await.json().await.unwrap();
    status["health"].clone()
}

/// Runs `keyward rotate-keys` as an operator would, off the async runtime
/// (the server under test keeps serving meanwhile), with a deadline.
async fn rotate(database_url: &str, current: &str, old: &str) -> String {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_keyward"));
    command
        .arg("rotate-keys")
        .env("DATABASE_URL", database_url)
        .env("KEYWARD_MASTER_KEY", current)
        .env("KEYWARD_OLD_MASTER_KEYS", old)
        .env("RUST_LOG", "warn");
    let run = tokio::task::spawn_blocking(move || command.output());
    let out = tokio::time::timeout(std::time::Duration::from_secs(60), run)
        .await
        .expect("rotate-keys finished within 60 s")
        .unwrap()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

async fn stored_key_survives_restart_and_rotation(db: TestDb) {
    let mock = MockUpstream::start();
    let base = ["--anthropic-base-url", mock.url.as_str()];
    let app = spawn_app_with(db, &base).await;
    app.signup("ada@example.com", PASSWORD).await;
    assert_eq!(
        app.call("keys/save", &[("api_key", VALID_KEY)])
            .await
            .status(),
        StatusCode::OK
    );
    let url = app.stop().await;

    // Same master key: still readable.
    let app = spawn_app_on(&url, &base).await;
    assert_eq!(key_health(&app).await, "Ok");
    app.stop().await;

    // New master key with the old one kept for decryption.
    let with_old = [
        base[0],
        base[1],
        "--master-key",
        NEW_MASTER_KEY,
        "--old-master-keys",
        TEST_MASTER_KEY,
    ];
    let app = spawn_app_on(&url, &with_old).await;
    assert_eq!(key_health(&app).await, "Ok");

    // Rotate while that server is running, twice (idempotent).
    let first = rotate(&url, NEW_MASTER_KEY, TEST_MASTER_KEY).await;
    assert!(first.contains("rotated 1 key(s)"), "{first}");
    assert!(
        first.contains("no keys remain on old master keys"),
        "{first}"
    );
    let second = rotate(&url, NEW_MASTER_KEY, TEST_MASTER_KEY).await;
    assert!(second.contains("rotated 0 key(s)"), "{second}");
    assert_eq!(key_health(&app).await, "Ok");
    app.stop().await;

    // Only the new key now: still readable.
    let only_new = [base[0], base[1], "--master-key", NEW_MASTER_KEY];
    let app = spawn_app_on(&url, &only_new).await;
    assert_eq!(key_health(&app).await, "Ok");
    app.stop().await;

    // A master key that never wrote it: the server starts, the user is told to re-enter.
    let unrelated = [base[0], base[1], "--master-key", UNRELATED_MASTER_KEY];
    let app = spawn_app_on(&url, &unrelated).await;
    assert_eq!(key_health(&app).await, "Unreadable");
    let page = app.get("/settings").await.text().await.unwrap();
    assert!(page.contains("re-enter your key"));
}

async fn rotation_reports_rows_no_key_can_open_and_keeps_them(db: TestDb) {
    let mock = MockUpstream::start();
    let app = spawn_app_with(db, &["--anthropic-base-url", &mock.url]).await;
    let ada: serde_json::Value = app
        .signup("ada@example.com", PASSWORD)
        .await
        .json()
        .await
        .unwrap();
    app.call("keys/save", &[("api_key", VALID_KEY)]).await;
    let url = app.stop().await;

    let out = rotate(&url, NEW_MASTER_KEY, UNRELATED_MASTER_KEY).await;
    assert!(out.contains("rotated 0 key(s)"), "{out}");
    assert!(out.contains(&format!("user ids: {}", ada["id"])), "{out}");
    assert!(out.contains("1 key(s) remain on master key"), "{out}");

    let app = spawn_app_on(&url, &["--anthropic-base-url", &mock.url]).await;
    assert_eq!(key_health(&app).await, "Ok", "the row was left untouched");
}

db_tests!(
    stored_key_survives_restart_and_rotation,
    rotation_reports_rows_no_key_can_open_and_keeps_them
);
