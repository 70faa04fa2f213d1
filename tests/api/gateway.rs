//! The Anthropic-compatible gateway: personal tokens, routing, limits and
//! ledger shared with the chat path, SSE relayed as it arrives.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::{
    chat_helpers::{chat_app, mock_with_platform_key, PLATFORM_KEY},
    db_tests,
    helpers::{TestApp, TestDb, PASSWORD},
    mock::{MockUpstream, VALID_KEY},
};

/// Creates a personal token through the settings page's server function.
pub async fn create_token(app: &TestApp, name: &str) -> String {
    let response = app.call("tokens/create", &[("name", name)]).await;
    assert_eq!(response.status(), StatusCode::OK);
    let created: Value = response.json().await.unwrap();
    created["token"].as_str().unwrap().to_owned()
}

pub fn body(model: &str, max_tokens: u64, text: &str) -> Value {
    json!({
        "model": model,
        "max_tokens": max_tokens,
        "messages": [{ "role": "user", "content": text }],
    })
}

/// A program's request: no cookies, no Origin, just the token.
pub async fn post(app: &TestApp, token: &str, path: &str, body: &Value) -> reqwest::Response {
    reqwest::Client::new()
        .post(app.url(path))
        .header("x-api-key", token)
        .header("anthropic-version", "2023-06-01")
        .json(body)
        .send()
        .await
        .unwrap()
}

pub async fn ledger_rows(
    app: &TestApp,
    expected: usize,
) -> Vec<(String, i64, i64, Option<i64>, String)> {
    // Rows are committed right after the answer goes out; wait for them.
    for _ in 0..200 {
        let rows: Vec<(String, i64, i64, Option<i64>, String)> = sqlx::query_as(
            "SELECT key_source, input_tokens, output_tokens, token_id, status FROM usage_ledger ORDER BY id",
        )
        .fetch_all(&app.db)
        .await
        .unwrap();
        if rows.len() >= expected {
            return rows;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("expected {expected} ledger rows");
}

async fn a_token_is_shown_once_and_stored_only_as_its_hash(db: TestDb) {
    let mock = mock_with_platform_key();
    let app = chat_app(db, &mock, &[]).await;
    let token = create_token(&app, "laptop").await;
    assert!(token.starts_with("kw_") && token.len() == 35, "{token}");

    let listed: Value = app.call("tokens/list", &[]).await.json().await.unwrap();
    assert_eq!(listed[0]["name"], "laptop");
    assert_eq!(listed[0]["prefix"], &token[..9]);
    assert!(
        !listed.to_string().contains(&token),
        "lists never show the token"
    );

    let (hash, prefix): (String, String) =
        sqlx::query_as("SELECT token_hash, prefix FROM api_tokens")
            .fetch_one(&app.db)
            .await
            .unwrap();
    let expected: String = Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(hash, expected);
    assert_eq!(prefix, &token[..9]);

    // The same name twice is refused with a clear message; an empty name too.
    let again = app.call("tokens/create", &[("name", "laptop")]).await;
    assert_eq!(again.status(), StatusCode::BAD_REQUEST);
    assert!(again
        .text()
        .await
        .unwrap()
        .contains("already have a token named"));
    let empty = app.call("tokens/create", &[("name", "  ")]).await;
    assert_eq!(empty.status(), StatusCode::BAD_REQUEST);
    let audit: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM audit_log WHERE action = 'token_issued'")
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert_eq!(audit, 1);
}

async fn a_json_call_on_the_platform_key_is_clamped_forwarded_and_ledgered(db: TestDb) {
    let mock = mock_with_platform_key();
    let app = chat_app(db, &mock, &[]).await;
    let token = create_token(&app, "script").await;
    let mut request = body("claude-haiku-4-5", 4000, "hello gateway");
    request["metadata"] = json!({ "user_id": "caller-42" });
    request["system"] = json!("be brief");
    let response = reqwest::Client::new()
        .post(app.url("/v1/messages"))
        .header("authorization", format!("Bearer {token}"))
        .header("anthropic-version", "2023-06-01")
        .header("anthropic-beta", "some-beta-2025-01-01")
        .json(&request)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.headers().get("request-id").is_some());
    let reply: Value = response.json().await.unwrap();
    assert_eq!(reply["type"], "message");
    let usage = reply["usage"].clone();

    let calls = mock.received_on("/v1/messages").await;
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0]["api_key"], PLATFORM_KEY);
    assert_eq!(calls[0]["max_tokens"], 1024, "clamped to the free plan");
    assert_eq!(calls[0]["anthropic_beta"], "some-beta-2025-01-01");
    assert_eq!(calls[0]["body"]["metadata"]["user_id"], "caller-42");
    assert_eq!(calls[0]["body"]["system"], "be brief");

    let rows = ledger_rows(&app, 1).await;
    assert_eq!(rows.len(), 1);
    let (source, input, output, token_id, status) = &rows[0];
    assert_eq!(source, "platform");
    assert_eq!(*input, usage["input_tokens"].as_i64().unwrap());
    assert_eq!(*output, usage["output_tokens"].as_i64().unwrap());
    assert!(token_id.is_some());
    assert_eq!(status, "200");
    let used: i64 = sqlx::query_scalar("SELECT tokens FROM usage_daily")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(
        used,
        input + output,
        "the reservation settled to the real usage"
    );
}

async fn a_saved_key_pays_for_gateway_calls_on_any_model(db: TestDb) {
    let mock = mock_with_platform_key();
    let app = chat_app(db, &mock, &[]).await;
    assert_eq!(
        app.call("keys/save", &[("api_key", VALID_KEY)])
            .await
            .status(),
        StatusCode::OK
    );
    let token = create_token(&app, "premium").await;
    let response = post(
        &app,
        &token,
        "/v1/messages",
        &body("claude-opus-4-7", 4000, "hi"),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    let calls = mock.received_on("/v1/messages").await;
    assert_eq!(calls.last().unwrap()["api_key"], VALID_KEY);
    assert_eq!(
        calls.last().unwrap()["max_tokens"],
        4000,
        "no clamp on the user's key"
    );
    let rows = ledger_rows(&app, 1).await;
    assert_eq!(rows[0].0, "user");

    let models: Value = reqwest::Client::new()
        .get(app.url("/v1/models"))
        .header("x-api-key", &token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(models["data"].as_array().unwrap().len(), 3);
}

async fn bad_tokens_are_401_and_revocation_is_immediate(db: TestDb) {
    let mock = mock_with_platform_key();
    let app = chat_app(db, &mock, &[]).await;
    let token = create_token(&app, "to revoke").await;
    let request = body("claude-haiku-4-5", 100, "hi");
    assert_eq!(
        post(&app, &token, "/v1/messages", &request).await.status(),
        200
    );

    // The real token with its last character changed (never to itself).
    let (head, last) = token.split_at(token.len() - 1);
    let tampered = format!("{head}{}", if last == "x" { "y" } else { "x" });
    for bad in ["", "kw_nope", "sk-ant-api03-whatever", &tampered] {
        let response = post(&app, bad, "/v1/messages", &request).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{bad}");
        let error: Value = response.json().await.unwrap();
        assert_eq!(error["type"], "error");
        assert_eq!(error["error"]["type"], "authentication_error");
    }
    let no_header = reqwest::Client::new()
        .post(app.url("/v1/messages"))
        .json(&request)
        .send()
        .await
        .unwrap();
    assert_eq!(no_header.status(), StatusCode::UNAUTHORIZED);

    let id = {
        let listed: Value = app.call("tokens/list", &[]).await.json().await.unwrap();
        listed[0]["id"].as_i64().unwrap().to_string()
    };
    // Another user cannot revoke it.
    let other = app.new_client();
    app.call_with(
        &other,
        "signup",
        &[("email", "eve@example.com"), ("password", PASSWORD)],
    )
    .await;
    let refused = app.call_with(&other, "tokens/revoke", &[("id", &id)]).await;
    assert_eq!(refused.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        post(&app, &token, "/v1/messages", &request).await.status(),
        200
    );

    assert_eq!(
        app.call("tokens/revoke", &[("id", &id)]).await.status(),
        200
    );
    let after = post(&app, &token, "/v1/messages", &request).await;
    assert_eq!(after.status(), StatusCode::UNAUTHORIZED, "revoked at once");
    assert_eq!(mock.received_on("/v1/messages").await.len(), 2);
}

async fn a_disabled_users_token_is_refused(db: TestDb) {
    let mock = mock_with_platform_key();
    let app = chat_app(db, &mock, &[]).await;
    let token = create_token(&app, "t").await;
    let request = body("claude-haiku-4-5", 100, "hi");
    assert_eq!(
        post(&app, &token, "/v1/messages", &request).await.status(),
        200
    );
    keyward::server::auth::set_user_disabled(&app.db, 1, true, app.clock.now_ms())
        .await
        .unwrap();
    // Disabled elsewhere (here: straight in the database, as another
    // instance would): refused within the cache's lifetime of under a second.
    let mut refused = None;
    for _ in 0..100 {
        let listed = reqwest::Client::new()
            .get(app.url("/v1/models"))
            .header("x-api-key", &token)
            .send()
            .await
            .unwrap();
        if listed.status() == StatusCode::FORBIDDEN {
            refused = Some(listed.json::<Value>().await.unwrap());
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let error = refused.expect("refused within two seconds");
    assert_eq!(error["error"]["type"], "permission_error");
    let response = post(&app, &token, "/v1/messages", &request).await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert_eq!(mock.received_on("/v1/messages").await.len(), 1);
}

async fn keywards_own_errors_have_anthropics_shape(db: TestDb) {
    let mock = mock_with_platform_key();
    let app = chat_app(
        db,
        &mock,
        &["--max-body-bytes", "2000", "--requests-per-day", "1"],
    )
    .await;
    let token = create_token(&app, "t").await;
    let expect = |status: StatusCode, kind: &'static str| {
        move |response: reqwest::Response| async move {
            assert_eq!(response.status(), status);
            let error: Value = response.json().await.unwrap();
            assert_eq!(error["type"], "error");
            assert_eq!(error["error"]["type"], kind, "{error}");
            error["error"]["message"].as_str().unwrap().to_owned()
        }
    };
    let not_in_plan = post(
        &app,
        &token,
        "/v1/messages",
        &body("claude-opus-4-7", 10, "x"),
    )
    .await;
    let message = expect(StatusCode::FORBIDDEN, "permission_error")(not_in_plan).await;
    assert!(message.contains("claude-haiku-4-5"), "{message}");

    let malformed = reqwest::Client::new()
        .post(app.url("/v1/messages"))
        .header("x-api-key", &token)
        .body("{not json")
        .send()
        .await
        .unwrap();
    expect(StatusCode::BAD_REQUEST, "invalid_request_error")(malformed).await;
    let no_model = post(
        &app,
        &token,
        "/v1/messages",
        &json!({"max_tokens": 5, "messages": []}),
    )
    .await;
    expect(StatusCode::BAD_REQUEST, "invalid_request_error")(no_model).await;
    let huge = post(
        &app,
        &token,
        "/v1/messages",
        &body("claude-haiku-4-5", 10, &"x".repeat(5000)),
    )
    .await;
    expect(StatusCode::PAYLOAD_TOO_LARGE, "request_too_large")(huge).await;

    let ok = post(
        &app,
        &token,
        "/v1/messages",
        &body("claude-haiku-4-5", 10, "one"),
    )
    .await;
    assert_eq!(ok.status(), StatusCode::OK);
    let limited = post(
        &app,
        &token,
        "/v1/messages",
        &body("claude-haiku-4-5", 10, "two"),
    )
    .await;
    let retry_after: u64 = limited.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry_after > 0 && retry_after <= 86_400);
    let message = expect(StatusCode::TOO_MANY_REQUESTS, "rate_limit_error")(limited).await;
    assert!(message.contains("00:00 UTC"), "{message}");

    let unknown = reqwest::Client::new()
        .get(app.url("/v1/complete"))
        .header("x-api-key", &token)
        .send()
        .await
        .unwrap();
    expect(StatusCode::NOT_FOUND, "not_found_error")(unknown).await;
    assert_eq!(
        mock.received_on("/v1/messages").await.len(),
        1,
        "only the allowed call went upstream"
    );
}

async fn upstream_errors_pass_through_unchanged(db: TestDb) {
    let mock = mock_with_platform_key();
    let app = chat_app(db, &mock, &[]).await;
    let token = create_token(&app, "t").await;
    let response = post(
        &app,
        &token,
        "/v1/messages",
        &body("claude-haiku-4-5", 10, "mock:529"),
    )
    .await;
    assert_eq!(response.status().as_u16(), 529);
    assert!(response.headers().get("request-id").is_some());
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["error"]["type"], "overloaded_error");

    let limited = post(
        &app,
        &token,
        "/v1/messages",
        &body("claude-haiku-4-5", 10, "mock:429"),
    )
    .await;
    assert_eq!(limited.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(limited.headers().get("retry-after").is_some());

    let rows = ledger_rows(&app, 2).await;
    assert_eq!(rows[0].4, "529");
    assert_eq!(rows[1].4, "429");
    // A call Anthropic answered counts as a request, even an error; an
    // error answer bills no tokens.
    let (requests, tokens): (i64, i64) = sqlx::query_as("SELECT requests, tokens FROM usage_daily")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!((requests, tokens), (2, 0));
}

async fn a_stream_is_relayed_event_by_event_and_ledgered(db: TestDb) {
    let mock = mock_with_platform_key();
    let app = chat_app(db, &mock, &[]).await;
    let token = create_token(&app, "t").await;
    let mut request = body("claude-haiku-4-5", 200, "tell me slowly mock:slow");
    request["stream"] = json!(true);
    let mut response = post(&app, &token, "/v1/messages", &request).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let first = String::from_utf8(response.chunk().await.unwrap().unwrap().to_vec()).unwrap();
    assert!(first.contains("message_start"), "{first}");
    assert!(
        !first.contains("message_stop"),
        "the first event arrives before the upstream finishes"
    );
    let in_flight: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM usage_ledger")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(in_flight, 0, "the call is still running");
    let mut rest = first;
    while let Some(chunk) = response.chunk().await.unwrap() {
        rest.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(rest.contains("event: message_stop"));
    let output: i64 = rest
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .filter(|e| e["type"] == "message_delta")
        .map(|e| e["usage"]["output_tokens"].as_i64().unwrap())
        .next_back()
        .unwrap();
    let rows = ledger_rows(&app, 1).await;
    assert_eq!(rows[0].2, output);
    assert_eq!(rows[0].4, "200");
}

/// keyward with its admin signed in on `app.client`, and a token of a
/// second user, bob (user 2), whom the admin may disable.
async fn admin_and_bobs_token(db: TestDb, mock: &MockUpstream) -> (TestApp, String) {
    let app = chat_app(db, mock, &[]).await;
    let bob = app.new_client();
    let form = [("email", "bob@example.com"), ("password", PASSWORD)];
    app.call_with(&bob, "signup", &form).await;
    let created: Value = app
        .call_with(&bob, "tokens/create", &[("name", "bob")])
        .await
        .json()
        .await
        .unwrap();
    (app, created["token"].as_str().unwrap().to_owned())
}

/// Disabling an account stops its streams there and then: the rest of
/// the reply is not relayed, and the call is recorded as stopped.
async fn disabling_a_user_cuts_their_running_stream(db: TestDb) {
    let mock = mock_with_platform_key();
    let (app, token) = admin_and_bobs_token(db, &mock).await;
    let mut request = body("claude-haiku-4-5", 200, "tell me slowly mock:slow");
    request["stream"] = json!(true);
    let mut response = post(&app, &token, "/v1/messages", &request).await;
    let mut seen = String::from_utf8_lossy(&response.chunk().await.unwrap().unwrap()).into_owned();
    assert!(seen.contains("message_start"), "{seen}");
    let disabled = app
        .call(
            "admin/set_disabled",
            &[("user_id", "2"), ("disabled", "true")],
        )
        .await;
    assert_eq!(disabled.status(), StatusCode::OK);
    while let Ok(Some(chunk)) = response.chunk().await {
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(
        !seen.contains("message_stop"),
        "the stream ran to its end: {seen}"
    );
    let rows = ledger_rows(&app, 1).await;
    assert_eq!(rows[0].4, "stopped");
}

/// The same before Anthropic has answered: the call ends at once (529,
/// which a client retries into its 403) and is recorded as stopped.
async fn disabling_a_user_cuts_their_call_waiting_for_anthropic(db: TestDb) {
    let mock = mock_with_platform_key();
    let (app, token) = admin_and_bobs_token(db, &mock).await;
    let hanging = body("claude-haiku-4-5", 20, "mock:hang");
    let waiting = post(&app, &token, "/v1/messages", &hanging);
    let disable = async {
        // Once the call has reached the mock, which hangs for 30 s.
        while mock.received_on("/v1/messages").await.is_empty() {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        app.call(
            "admin/set_disabled",
            &[("user_id", "2"), ("disabled", "true")],
        )
        .await
        .status()
    };
    let started = std::time::Instant::now();
    let (answer, disabled) = tokio::join!(waiting, disable);
    assert_eq!(disabled, StatusCode::OK);
    assert_eq!(answer.status().as_u16(), 529);
    assert!(
        started.elapsed() < std::time::Duration::from_secs(20),
        "not the mock's 30 s"
    );
    let rows = ledger_rows(&app, 1).await;
    assert_eq!(rows[0].4, "stopped");
}

async fn a_client_that_hangs_up_mid_stream_is_ledgered_as_stopped(db: TestDb) {
    let mock = mock_with_platform_key();
    let app = chat_app(db, &mock, &[]).await;
    let token = create_token(&app, "t").await;
    let mut request = body("claude-haiku-4-5", 200, "mock:slow");
    request["stream"] = json!(true);
    let mut response = post(&app, &token, "/v1/messages", &request).await;
    let mut seen = String::new();
    while !seen.contains("content_block_delta") {
        seen.push_str(&String::from_utf8_lossy(
            &response.chunk().await.unwrap().unwrap(),
        ));
    }
    drop(response);
    let rows = ledger_rows(&app, 1).await;
    assert_eq!(rows[0].4, "stopped");
    assert!(rows[0].1 > 0, "input tokens from message_start are kept");
}

async fn thirty_concurrent_gateway_calls_respect_a_limit_of_five(db: TestDb) {
    let mock = mock_with_platform_key();
    let app = chat_app(
        db,
        &mock,
        &["--requests-per-day", "5", "--requests-per-minute", "100"],
    )
    .await;
    let token = create_token(&app, "t").await;
    let request = body("claude-haiku-4-5", 50, "hi");
    let calls = (0..30).map(|_| post(&app, &token, "/v1/messages", &request));
    let statuses: Vec<u16> = futures::future::join_all(calls)
        .await
        .iter()
        .map(|r| r.status().as_u16())
        .collect();
    assert_eq!(statuses.iter().filter(|s| **s == 200).count(), 5);
    assert_eq!(statuses.iter().filter(|s| **s == 429).count(), 25);
    assert_eq!(mock.received_on("/v1/messages").await.len(), 5);
    assert_eq!(ledger_rows(&app, 5).await.len(), 5);
}

async fn count_tokens_and_models_follow_the_plan(db: TestDb) {
    let mock = mock_with_platform_key();
    let app = chat_app(db, &mock, &[]).await;
    let token = create_token(&app, "t").await;
    let counted = post(
        &app,
        &token,
        "/v1/messages/count_tokens",
        &json!({
            "model": "claude-haiku-4-5",
            "messages": [{ "role": "user", "content": "count these words please" }],
        }),
    )
    .await;
    assert_eq!(counted.status(), StatusCode::OK);
    let counted: Value = counted.json().await.unwrap();
    assert!(counted["input_tokens"].as_u64().unwrap() > 0);
    let calls = mock.received_on("/v1/messages/count_tokens").await;
    assert_eq!(calls[0]["api_key"], PLATFORM_KEY);

    let models: Value = reqwest::Client::new()
        .get(app.url("/v1/models"))
        .header("authorization", format!("Bearer {token}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ids: Vec<&str> = models["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["claude-haiku-4-5"]);
    let one = reqwest::Client::new()
        .get(app.url("/v1/models/claude-haiku-4-5-20251001"))
        .header("x-api-key", &token)
        .send()
        .await
        .unwrap();
    assert_eq!(one.status(), StatusCode::OK);
}

async fn count_tokens_on_the_platform_key_is_held_to_the_plan_per_minute_rate(db: TestDb) {
    let mock = mock_with_platform_key();
    // The free plan's default: 10 requests per minute.
    let app = chat_app(db, &mock, &[]).await;
    let token = create_token(&app, "t").await;
    let request = json!({
        "model": "claude-haiku-4-5",
        "messages": [{ "role": "user", "content": "count me" }],
    });
    let calls = (0..12).map(|_| post(&app, &token, "/v1/messages/count_tokens", &request));
    let answers = futures::future::join_all(calls).await;
    let statuses: Vec<u16> = answers.iter().map(|r| r.status().as_u16()).collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        10,
        "{statuses:?}"
    );
    let limited: Vec<_> = answers.iter().filter(|r| r.status() == 429).collect();
    assert_eq!(limited.len(), 2);
    let wait: u64 = limited[0].headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&wait), "retry-after {wait}");
    assert_eq!(
        mock.received_on("/v1/messages/count_tokens").await.len(),
        10
    );
}

async fn a_rejected_user_key_is_401_and_never_falls_back_unless_opted_in(db: TestDb) {
    let mock = MockUpstream::start_with_keys(&[PLATFORM_KEY, VALID_KEY]);
    let app = chat_app(db, &mock, &[]).await;
    app.call("keys/save", &[("api_key", VALID_KEY)]).await;
    let token = create_token(&app, "t").await;
    // Anthropic revokes the key: restart against a mock that no longer knows it.
    let revoked = MockUpstream::start_with_keys(&[PLATFORM_KEY]);
    let url = app.stop().await;
    let app = crate::helpers::spawn_app_on(
        &url,
        &[
            "--anthropic-base-url",
            &revoked.url,
            "--anthropic-api-key",
            PLATFORM_KEY,
        ],
    )
    .await;
    app.login("ada@example.com", PASSWORD).await;
    let request = body("claude-haiku-4-5", 10, "hi");
    let response = post(&app, &token, "/v1/messages", &request).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let error: Value = response.json().await.unwrap();
    assert!(error["error"]["message"]
        .as_str()
        .unwrap()
        .contains("saved in your keyward account"));
    let calls = revoked.received_on("/v1/messages").await;
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0]["api_key"], VALID_KEY, "no platform retry");

    // Marked rejected: refused up front.
    let again = post(&app, &token, "/v1/messages", &request).await;
    assert_eq!(again.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(revoked.received_on("/v1/messages").await.len(), 1);

    // Opted in: the free tier takes over, under the free plan.
    assert_eq!(
        app.call("keys/fallback", &[("on", "true")]).await.status(),
        200
    );
    let fallback = post(
        &app,
        &token,
        "/v1/messages",
        &body("claude-haiku-4-5", 4000, "hi"),
    )
    .await;
    assert_eq!(fallback.status(), StatusCode::OK);
    let calls = revoked.received_on("/v1/messages").await;
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[1]["api_key"], PLATFORM_KEY);
    assert_eq!(calls[1]["max_tokens"], 1024);
    let rows = ledger_rows(&app, 2).await;
    assert_eq!(rows[1].0, "platform");
}

db_tests!(
    a_token_is_shown_once_and_stored_only_as_its_hash,
    a_json_call_on_the_platform_key_is_clamped_forwarded_and_ledgered,
    a_saved_key_pays_for_gateway_calls_on_any_model,
    bad_tokens_are_401_and_revocation_is_immediate,
    a_disabled_users_token_is_refused,
    keywards_own_errors_have_anthropics_shape,
    upstream_errors_pass_through_unchanged,
    a_stream_is_relayed_event_by_event_and_ledgered,
    a_client_that_hangs_up_mid_stream_is_ledgered_as_stopped,
    disabling_a_user_cuts_their_running_stream,
    disabling_a_user_cuts_their_call_waiting_for_anthropic,
    thirty_concurrent_gateway_calls_respect_a_limit_of_five,
    count_tokens_and_models_follow_the_plan,
    count_tokens_on_the_platform_key_is_held_to_the_plan_per_minute_rate,
    a_rejected_user_key_is_401_and_never_falls_back_unless_opted_in,
);
