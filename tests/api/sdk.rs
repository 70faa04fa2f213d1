//! The official Anthropic Python SDK against the gateway (tests/sdk).
//!
//! `make test` installs the SDK in a virtualenv and names its interpreter in
//! KEYWARD_SDK_PYTHON; a bare `cargo test` without it skips this test and says so.

use reqwest::StatusCode;
use serde_json::Value;

use crate::{
    chat_helpers::{chat_app, mock_with_platform_key},
    db_tests,
    helpers::{TestApp, TestDb, PASSWORD},
    mock::VALID_KEY,
};

async fn token_for(app: &TestApp, client: &reqwest::Client) -> String {
    let created = app
        .call_with(client, "tokens/create", &[("name", "sdk")])
        .await;
    assert_eq!(created.status(), StatusCode::OK);
    let created: Value = created.json().await.unwrap();
    created["token"].as_str().unwrap().to_owned()
}

async fn the_official_python_sdk_works_unmodified(db: TestDb) {
    let Ok(python) = std::env::var("KEYWARD_SDK_PYTHON") else {
        eprintln!("skipped: set KEYWARD_SDK_PYTHON (make test does) to run the Python SDK tests");
        return;
    };
    let mock = mock_with_platform_key();
    let app = chat_app(db, &mock, &["--requests-per-day", "1"]).await;
    // ada pays with her own key; bob is on the free plan (one request a day).
    assert_eq!(
        app.call("keys/save", &[("api_key", VALID_KEY)])
            .await
            .status(),
        200
    );
    let token = token_for(&app, &app.client).await;
    let bob = app.new_client();
    app.call_with(
        &bob,
        "signup",
        &[("email", "bob@example.com"), ("password", PASSWORD)],
    )
    .await;
    let free_token = token_for(&app, &bob).await;

    let tests_dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/sdk");
    let base = app.base.clone();
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new(python)
            .args(["-m", "pytest", "-q", "-p", "no:cacheprovider", tests_dir])
            .env("KEYWARD_BASE_URL", base)
            .env("KEYWARD_TOKEN", token)
            .env("KEYWARD_FREE_TOKEN", free_token)
            .output()
            .expect("run pytest")
    })
    .await
    .unwrap();
    let report = format!(
        "{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.status.success(),
        "Python SDK tests failed:\n{report}"
    );
    assert!(report.contains("8 passed"), "{report}");
}

db_tests!(the_official_python_sdk_works_unmodified,);
