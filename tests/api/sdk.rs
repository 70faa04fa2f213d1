//! The official Anthropic Python and TypeScript SDKs against the gateway
//! (tests/sdk).
//!
//! `make test` installs the Python SDK in a virtualenv and names its
//! interpreter in KEYWARD_SDK_PYTHON, and the TypeScript SDK under
//! tests/sdk/ts, naming Node.js in KEYWARD_SDK_NODE; without them these
//! tests fail and say so (skip them with `--skip sdk::`).

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

/// Starts keyward for an SDK run: ada on her own key, bob on a free plan
/// allowing one request a day. Returns the app and their tokens.
async fn sdk_app(db: TestDb) -> (TestApp, crate::mock::MockUpstream, String, String) {
    let mock = mock_with_platform_key();
    let app = chat_app(db, &mock, &["--requests-per-day", "1"]).await;
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
    (app, mock, token, free_token)
}

/// Runs `program args…` with the app's address and tokens in the
/// environment; its combined output, and whether it passed.
async fn run_sdk_tests(
    program: String,
    args: Vec<String>,
    app: &TestApp,
    token: String,
    free_token: String,
) -> (bool, String) {
    let base = app.base.clone();
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new(&program)
            .args(&args)
            .env("KEYWARD_BASE_URL", base)
            .env("KEYWARD_TOKEN", token)
            .env("KEYWARD_FREE_TOKEN", free_token)
            .output()
            .unwrap_or_else(|err| panic!("run {program}: {err}"))
    })
    .await
    .unwrap();
    let report = format!(
        "{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), report)
}

/// The program `variable` names. An SDK test without it fails rather than
/// passing unrun: leave the SDK tests out with `--skip sdk::` instead.
fn sdk_program(variable: &str, what: &str) -> String {
    std::env::var(variable).unwrap_or_else(|_| {
        panic!(
            "{variable} is not set: point it at {what} (make test does), \
             or leave these tests out with `cargo test -- --skip sdk::`"
        )
    })
}

async fn the_official_python_sdk_works_unmodified(db: TestDb) {
    let python = sdk_program("KEYWARD_SDK_PYTHON", "Python with the SDK (make sdk-tools)");
    let (app, _mock, token, free_token) = sdk_app(db).await;
    let tests_dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/sdk");
    let args = ["-m", "pytest", "-q", "-p", "no:cacheprovider", tests_dir]
        .map(String::from)
        .to_vec();
    let (passed, report) = run_sdk_tests(python, args, &app, token, free_token).await;
    assert!(passed, "Python SDK tests failed:\n{report}");
    assert!(report.contains("8 passed"), "{report}");
}

async fn the_official_typescript_sdk_works_unmodified(db: TestDb) {
    let node = sdk_program("KEYWARD_SDK_NODE", "Node.js (tests/sdk/ts holds the SDK)");
    let (app, _mock, token, free_token) = sdk_app(db).await;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/sdk/ts/sdk.test.mjs");
    let args = ["--test", "--test-reporter=tap", script]
        .map(String::from)
        .to_vec();
    let (passed, report) = run_sdk_tests(node, args, &app, token, free_token).await;
    assert!(passed, "TypeScript SDK tests failed:\n{report}");
    assert!(report.contains("# pass 8"), "{report}");
}

db_tests!(
    the_official_python_sdk_works_unmodified,
    the_official_typescript_sdk_works_unmodified,
);
