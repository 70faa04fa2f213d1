//! Daily caps a user sets on their own key: validated and audited when
//! set, and held like the platform's limits — the worst case reserved
//! before the call, settled to the real use after, never overshot.

use futures::future::join_all;
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::{
    chat_helpers::{chat_app, mock_with_platform_key, send},
    db_tests,
    gateway::{body, create_token, ledger_rows, post},
    helpers::{TestApp, TestDb},
    mock::VALID_KEY,
};

/// A chat turn "hi" in a new conversation on the user's key: 17 tokens of
/// input estimate (`{"role":"user","content":"hi"}`: 4 of framing, half a
/// token a byte of each key and value, rounded up, plus one) and the chat's
/// `max_tokens` of 4096.
const CHAT_HI_WORST: i64 = 17 + 4096;

async fn save_caps(app: &TestApp, tokens: &str, usd: &str) -> reqwest::Response {
    app.call(
        "keys/caps/save",
        &[("tokens_per_day", tokens), ("usd_per_day", usd)],
    )
    .await
}

async fn save_key(app: &TestApp) {
    let saved = app.call("keys/save", &[("api_key", VALID_KEY)]).await;
    assert_eq!(saved.status(), StatusCode::OK);
}

/// (tokens, micro-USD) the user's key used or holds today.
async fn own_key_use(app: &TestApp) -> (i64, i64) {
    sqlx::query_as("SELECT tokens, cost_micro_usd FROM own_key_usage_daily")
        .fetch_optional(&app.db)
        .await
        .unwrap()
        .unwrap_or((0, 0))
}

/// (tokens, micro-USD) the ledger holds for calls on the user's key.
async fn ledger_use(app: &TestApp) -> (i64, i64) {
    sqlx::query_as(
        "SELECT CAST(COALESCE(SUM(input_tokens + output_tokens + cache_creation_tokens + cache_read_tokens), 0) AS BIGINT), \
         CAST(COALESCE(SUM(cost_micro_usd), 0) AS BIGINT) FROM usage_ledger WHERE key_source = 'user'",
    )
    .fetch_one(&app.db)
    .await
    .unwrap()
}

async fn caps_are_validated_saved_and_audited(db: TestDb) {
    let mock = mock_with_platform_key();
    let app = chat_app(db, &mock, &[]).await;
    let status: Value = app.call("keys/caps", &[]).await.json().await.unwrap();
    assert_eq!(status["caps"]["tokens_per_day"], Value::Null);
    assert_eq!(status["has_own_key"], false);

    let refused = save_caps(&app, "lots", "5").await;
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
    let message = refused.text().await.unwrap();
    assert!(message.contains("whole number of tokens"), "{message}");
    let refused = save_caps(&app, "", "-1").await;
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
    let unchanged: Value = app.call("keys/caps", &[]).await.json().await.unwrap();
    assert_eq!(
        unchanged["caps"]["micro_usd_per_day"],
        Value::Null,
        "a refused save changes nothing"
    );

    let saved = save_caps(&app, "1,000", "$2.50").await;
    assert_eq!(saved.status(), StatusCode::OK);
    let status: Value = app.call("keys/caps", &[]).await.json().await.unwrap();
    assert_eq!(status["caps"]["tokens_per_day"], 1000);
    assert_eq!(status["caps"]["micro_usd_per_day"], 2_500_000);
    let detail: String =
        sqlx::query_scalar("SELECT detail FROM audit_log WHERE action = 'caps_changed'")
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert_eq!(detail, "tokens 1000/day, spend $2.50/day");

    assert_eq!(save_caps(&app, " ", "").await.status(), StatusCode::OK);
    let status: Value = app.call("keys/caps", &[]).await.json().await.unwrap();
    assert_eq!(status["caps"]["tokens_per_day"], Value::Null);
    assert_eq!(status["caps"]["micro_usd_per_day"], Value::Null);
}

async fn a_token_cap_holds_the_worst_case_and_settles_to_real_use(db: TestDb) {
    let mock = mock_with_platform_key();
    let app = chat_app(db, &mock, &[]).await;
    save_key(&app).await;

    save_caps(&app, &(CHAT_HI_WORST - 1).to_string(), "").await;
    let refused = send(&app, None, "hi").await;
    assert_eq!(refused.status, 429);
    let message = refused.events[0].to_string();
    assert!(
        message.contains(&format!("up to {CHAT_HI_WORST} tokens"))
            && message.contains(&format!("daily cap of {} tokens", CHAT_HI_WORST - 1))
            && message.contains("00:00 UTC"),
        "{message}"
    );
    assert!(
        mock.received_on("/v1/messages").await.is_empty(),
        "a refused call never reaches Anthropic"
    );
    assert_eq!(own_key_use(&app).await, (0, 0), "a refusal holds nothing");

    save_caps(&app, &CHAT_HI_WORST.to_string(), "").await;
    let turn = send(&app, None, "hi").await;
    assert_eq!(turn.status, 200);
    assert_eq!(turn.started()["paid_by"], "user");
    let finished = turn.finished();
    let real =
        finished["input_tokens"].as_i64().unwrap() + finished["output_tokens"].as_i64().unwrap();
    assert!(real < CHAT_HI_WORST);
    assert_eq!(
        own_key_use(&app).await,
        ledger_use(&app).await,
        "the hold settled to the ledger's real use"
    );
    assert_eq!(own_key_use(&app).await.0, real);

    // Exactly one more worst case fits, not a token less.
    save_caps(&app, &(real + CHAT_HI_WORST - 1).to_string(), "").await;
    assert_eq!(send(&app, None, "hi").await.status, 429);
    save_caps(&app, &(real + CHAT_HI_WORST).to_string(), "").await;
    assert_eq!(send(&app, None, "hi").await.status, 200);
    assert_eq!(mock.received_on("/v1/messages").await.len(), 2);

    // The caps count the day only: tomorrow starts from zero.
    app.clock.advance_ms(24 * 60 * 60 * 1000);
    save_caps(&app, &CHAT_HI_WORST.to_string(), "").await;
    assert_eq!(send(&app, None, "hi").await.status, 200);
}

async fn a_spending_cap_is_enforced_on_the_gateway_in_anthropics_shape(db: TestDb) {
    let mock = mock_with_platform_key();
    let app = chat_app(db, &mock, &[]).await;
    save_key(&app).await;
    let token = create_token(&app, "capped").await;
    // Worst case on Haiku: ~7 input tokens at the $1.25/M cache-write rate
    // and 1000 output tokens at $5/M, just over $0.005.
    let request = body("claude-haiku-4-5", 1000, "hi");

    save_caps(&app, "", "0.005").await;
    let refused = post(&app, &token, "/v1/messages", &request).await;
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry_after: u64 = refused.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=86_400).contains(&retry_after));
    let error: Value = refused.json().await.unwrap();
    assert_eq!(error["type"], "error");
    assert_eq!(error["error"]["type"], "rate_limit_error");
    let message = error["error"]["message"].as_str().unwrap();
    assert!(message.contains("spending cap of $0.005"), "{message}");
    assert!(mock.received_on("/v1/messages").await.is_empty());

    save_caps(&app, "", "0.01").await;
    let answered = post(&app, &token, "/v1/messages", &request).await;
    assert_eq!(answered.status(), StatusCode::OK);
    let answer: Value = answered.json().await.unwrap();
    assert_eq!(answer["type"], "message");
    ledger_rows(&app, 1).await;
    let (_, spent) = own_key_use(&app).await;
    assert_eq!(spent, ledger_use(&app).await.1, "settled to the real cost");
    assert!(spent > 0 && spent < 5_000);

    // A model keyward cannot price cannot be held to a spending cap.
    let unpriced = post(&app, &token, "/v1/messages", &body("gpt-4o", 10, "hi")).await;
    assert_eq!(unpriced.status(), StatusCode::BAD_REQUEST);
    let error: Value = unpriced.json().await.unwrap();
    assert_eq!(error["error"]["type"], "invalid_request_error");
    assert!(error["error"]["message"]
        .as_str()
        .unwrap()
        .contains("no price for the model gpt-4o"));
    assert_eq!(mock.received_on("/v1/messages").await.len(), 1);
}

async fn thirty_concurrent_capped_calls_never_overshoot(db: TestDb) {
    let mock = mock_with_platform_key();
    let app = chat_app(db, &mock, &[]).await;
    save_key(&app).await;
    let token = create_token(&app, "busy").await;
    // Slow streams keep every admitted call in flight (holding its worst
    // case) while the others ask: keyward's input estimate + 100.
    let request = json!({
        "model": "claude-haiku-4-5",
        "max_tokens": 100,
        "stream": true,
        "messages": [{ "role": "user", "content": "mock:slow hi" }],
    });
    let worst = keyward::server::calls::estimate::request_input_tokens(&request) + 100;
    save_caps(&app, &(5 * worst).to_string(), "").await;
    let calls = (0..30).map(|_| post(&app, &token, "/v1/messages", &request));
    let responses = join_all(calls).await;
    let statuses: Vec<u16> = responses.iter().map(|r| r.status().as_u16()).collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        5,
        "{statuses:?}"
    );
    assert_eq!(statuses.iter().filter(|s| **s == 429).count(), 25);
    assert_eq!(mock.received_on("/v1/messages").await.len(), 5);
    drop(responses);
    ledger_rows(&app, 5).await;
    // Hung-up streams settle to what they used; the accounts agree.
    for _ in 0..200 {
        if own_key_use(&app).await == ledger_use(&app).await {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!(
        "own-key use {:?} != ledger {:?}",
        own_key_use(&app).await,
        ledger_use(&app).await
    );
}

db_tests!(
    caps_are_validated_saved_and_audited,
    a_token_cap_holds_the_worst_case_and_settles_to_real_use,
    a_spending_cap_is_enforced_on_the_gateway_in_anthropics_shape,
    thirty_concurrent_capped_calls_never_overshoot,
);
