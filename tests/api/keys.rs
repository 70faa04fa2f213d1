//! Saving, showing, replacing and removing a user's own Anthropic key.

use reqwest::StatusCode;
use sqlx::Row;

use crate::{
    db_tests,
    helpers::{spawn_app_with, TestApp, TestDb, PASSWORD},
    logs::captured_logs,
    mock::{MockUpstream, FORBIDDEN_KEY, SECOND_VALID_KEY, VALID_KEY},
};

async fn app_with_mock(db: TestDb, mock: &MockUpstream) -> TestApp {
    let app = spawn_app_with(db, &["--anthropic-base-url", &mock.url]).await;
    app.signup("ada@example.com", PASSWORD).await;
    app
}

async fn save(app: &TestApp, key: &str) -> reqwest::Response {
    app.call("keys/save", &[("api_key", key)]).await
}

async fn status(app: &TestApp) -> serde_json::Value {
    let response = app.call("keys/status", &[]).await;
    assert_eq!(response.status(), StatusCode::OK);
    response.json().await.unwrap()
}

async fn audit_actions(app: &TestApp) -> Vec<(String, String, Option<String>)> {
    sqlx::query("SELECT action, detail, ip FROM audit_log ORDER BY id")
        .fetch_all(&app.db)
        .await
        .unwrap()
        .iter()
        .map(|row| (row.get("action"), row.get("detail"), row.get("ip")))
        .collect()
}

async fn valid_key_is_probed_stored_and_shown_masked(db: TestDb) {
    let mock = MockUpstream::start();
    let app = app_with_mock(db, &mock).await;

    let response = save(&app, &format!("  {VALID_KEY}\n")).await;
    assert_eq!(response.status(), StatusCode::OK);
    let saved: serde_json::Value = response.json().await.unwrap();
    assert_eq!(saved["masked"], "sk-ant-…WXYZ");
    assert_eq!(saved["health"], "Ok");
    assert!(saved["last_used"].is_null());

    assert_eq!(status(&app).await, saved);
    let probes = mock.received_on("/v1/models").await;
    assert_eq!(probes.len(), 1);
    assert_eq!(
        probes[0]["api_key"], VALID_KEY,
        "the trimmed key was probed"
    );
    assert_eq!(probes[0]["anthropic_version"], "2023-06-01");

    let page = app.get("/settings").await.text().await.unwrap();
    assert!(page.contains("sk-ant-…WXYZ"));
}

async fn rejected_keys_are_not_stored(db: TestDb) {
    let mock = MockUpstream::start();
    let app = app_with_mock(db, &mock).await;

    let unknown = save(&app, "sk-ant-api03-not-a-key-the-mock-knows-1234").await;
    assert_eq!(unknown.status(), StatusCode::BAD_REQUEST);
    assert!(unknown
        .text()
        .await
        .unwrap()
        .contains("Anthropic rejected this key"));

    let forbidden = save(&app, FORBIDDEN_KEY).await;
    assert_eq!(forbidden.status(), StatusCode::BAD_REQUEST);
    assert!(forbidden.text().await.unwrap().contains("lacks permission"));

    assert!(status(&app).await.is_null());
    let rows: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM user_api_keys")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(rows, 0);
    let rejected = audit_actions(&app)
        .await
        .into_iter()
        .filter(|(a, _, _)| a == "key_rejected")
        .count();
    assert_eq!(rejected, 2);
}

async fn subscription_tokens_are_refused_before_any_probe(db: TestDb) {
    let mock = MockUpstream::start();
    let app = app_with_mock(db, &mock).await;
    let response = save(&app, "sk-ant-oat01-abcdefghijklmnopqrstuvwxyz0123").await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let body = response.text().await.unwrap();
    assert!(body.contains("subscription"), "{body}");
    assert!(
        body.contains("Create an API key in the Anthropic Console"),
        "{body}"
    );

    let not_a_key = save(&app, "sk-proj-0123456789abcdefghijklmnop").await;
    assert_eq!(not_a_key.status(), StatusCode::BAD_REQUEST);
    assert!(
        mock.received().await.is_empty(),
        "no probe for a malformed key"
    );
}

async fn unreachable_upstream_means_could_not_verify(db: TestDb) {
    // Port 9 (discard) refuses connections here.
    let app = spawn_app_with(db, &[]).await;
    app.signup("ada@example.com", PASSWORD).await;
    let response = save(&app, VALID_KEY).await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(response
        .text()
        .await
        .unwrap()
        .contains("Could not verify the key"));
    assert!(status(&app).await.is_null());
}

async fn replacing_overwrites_and_removing_deletes_the_row(db: TestDb) {
    let mock = MockUpstream::start();
    let app = app_with_mock(db, &mock).await;
    save(&app, VALID_KEY).await;
    let replaced: serde_json::Value = save(&app, SECOND_VALID_KEY).await.json().await.unwrap();
    assert_eq!(replaced["masked"], "sk-ant-…QRST");
    let rows: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM user_api_keys")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(rows, 1);

    let removed = app.call("keys/remove", &[]).await;
    assert_eq!(removed.status(), StatusCode::OK);
    assert!(status(&app).await.is_null());
    let rows: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM user_api_keys")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(rows, 0);

    let actions: Vec<String> = audit_actions(&app)
        .await
        .into_iter()
        .map(|(a, _, _)| a)
        .collect();
    let key_actions: Vec<&str> = actions
        .iter()
        .map(String::as_str)
        .filter(|a| a.starts_with("key_"))
        .collect();
    assert_eq!(key_actions, ["key_saved", "key_replaced", "key_removed"]);
    for (action, detail, ip) in audit_actions(&app).await {
        if action.starts_with("key_") {
            assert_eq!(
                ip.as_deref(),
                Some("127.0.0.1"),
                "{action} records the source IP"
            );
            assert!(
                !detail.contains("test-valid-user-key"),
                "{action} never holds the key"
            );
        }
    }
}

async fn the_key_never_leaves_the_server_in_clear(db: TestDb) {
    let mock = MockUpstream::start();
    let app = app_with_mock(db, &mock).await;
    let key = "sk-ant-api03-test-valid-user-key-0001-WXYZ";
    let mut bodies = vec![save(&app, key).await.text().await.unwrap()];
    bodies.push(app.call("keys/status", &[]).await.text().await.unwrap());
    bodies.push(app.get("/settings").await.text().await.unwrap());
    bodies.push(app.call("admin/users", &[]).await.text().await.unwrap());
    for body in &bodies {
        assert!(!body.contains(key), "a response carried the key: {body}");
        assert!(
            !body.contains("test-valid-user-key"),
            "a response carried part of the key"
        );
    }
    assert!(!captured_logs().contains(key), "the key reached the logs");

    if let Some(path) = app.sqlite_path() {
        let url = app.stop().await;
        let _ = url;
        for file in [path.clone(), path.with_extension("db-wal")] {
            if let Ok(bytes) = std::fs::read(&file) {
                let found = bytes.windows(key.len()).any(|w| w == key.as_bytes());
                assert!(!found, "{} holds the key in clear", file.display());
            }
        }
    } else {
        let stored: Vec<u8> = sqlx::query_scalar("SELECT ciphertext FROM user_api_keys")
            .fetch_one(&app.db)
            .await
            .unwrap();
        assert!(!stored.windows(key.len()).any(|w| w == key.as_bytes()));
    }
}

async fn change_password_needs_the_current_one_and_ends_other_sessions(db: TestDb) {
    let app = spawn_app_with(db, &[]).await;
    app.signup("ada@example.com", PASSWORD).await;
    let phone = app.new_client();
    app.login_with(&phone, "ada@example.com", PASSWORD).await;

    let wrong = app
        .call(
            "account/password",
            &[
                ("current_password", "nope nope nope"),
                ("new_password", "a brand new passphrase"),
            ],
        )
        .await;
    assert_eq!(wrong.status(), StatusCode::BAD_REQUEST);
    assert!(wrong
        .text()
        .await
        .unwrap()
        .contains("current password is not correct"));

    let ok = app
        .call(
            "account/password",
            &[
                ("current_password", PASSWORD),
                ("new_password", "a brand new passphrase"),
            ],
        )
        .await;
    assert_eq!(ok.status(), StatusCode::OK);
    assert_eq!(
        app.get("/settings").await.status(),
        StatusCode::OK,
        "this browser stays logged in"
    );
    assert_eq!(
        app.get_with(&phone, "/settings").await.status(),
        StatusCode::SEE_OTHER,
        "other sessions end"
    );
    let fresh = app.new_client();
    assert_eq!(
        app.login_with(&fresh, "ada@example.com", PASSWORD)
            .await
            .status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.login_with(&fresh, "ada@example.com", "a brand new passphrase")
            .await
            .status(),
        StatusCode::OK
    );
}

async fn key_endpoints_need_a_login(db: TestDb) {
    let app = spawn_app_with(db, &[]).await;
    let anonymous = app.call("keys/save", &[("api_key", VALID_KEY)]).await;
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        app.call("keys/status", &[]).await.status(),
        StatusCode::UNAUTHORIZED
    );
}

db_tests!(
    valid_key_is_probed_stored_and_shown_masked,
    rejected_keys_are_not_stored,
    subscription_tokens_are_refused_before_any_probe,
    unreachable_upstream_means_could_not_verify,
    replacing_overwrites_and_removing_deletes_the_row,
    the_key_never_leaves_the_server_in_clear,
    change_password_needs_the_current_one_and_ends_other_sessions,
    key_endpoints_need_a_login,
);
