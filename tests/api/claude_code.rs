//! Claude Code on the free tier: its requests (a large `max_tokens` with
//! manual extended thinking) stay valid under the plan's clamp.

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::{
    books::balanced_books,
    chat_helpers::{chat_app, mock_with_platform_key},
    db_tests,
    gateway::{body, create_token, post},
    helpers::TestDb,
    mock::VALID_KEY,
};

/// What Claude Code sends: 32,000 tokens out, thinking with a budget just
/// below that, context management, tools, and a thinking block from an
/// earlier turn in the history.
fn claude_code_request() -> Value {
    let mut request = body("claude-haiku-4-5", 32_000, "refactor this function");
    request["thinking"] = json!({ "type": "enabled", "budget_tokens": 31_999 });
    request["context_management"] = json!({ "edits": [{ "type": "clear_thinking_20251015" }] });
    request["tools"] = json!([{ "name": "Read", "input_schema": { "type": "object" } }]);
    request["messages"] = json!([
        { "role": "user", "content": "what does this do?" },
        { "role": "assistant", "content": [
            { "type": "thinking", "thinking": "Reading it.", "signature": "sig" },
            { "type": "text", "text": "It sorts." },
        ]},
        { "role": "user", "content": "refactor this function" },
    ]);
    request
}

async fn thinking_is_turned_off_when_the_clamp_leaves_no_room_for_it(db: TestDb) {
    let mock = mock_with_platform_key();
    // The free plan's clamp: 1,024 tokens, the smallest budget there is.
    let app = chat_app(db, &mock, &[]).await;
    let token = create_token(&app, "claude-code").await;
    let answer = reqwest::Client::new()
        .post(app.url("/v1/messages?beta=true"))
        .header("authorization", format!("Bearer {token}"))
        .header("anthropic-version", "2023-06-01")
        .header(
            "anthropic-beta",
            "interleaved-thinking-2025-05-14,context-management-2025-06-27",
        )
        .json(&claude_code_request())
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), StatusCode::OK);
    assert_eq!(answer.headers()["keyward-adjusted"], "thinking-disabled");
    let sent = mock.received_on("/v1/messages").await;
    assert_eq!(sent.len(), 1, "one call upstream, no 400 to retry");
    assert_eq!(sent[0]["max_tokens"], 1024);
    assert!(
        sent[0]["body"].get("thinking").is_none(),
        "{}",
        sent[0]["body"]
    );
    assert_eq!(
        sent[0]["body"]["messages"][1]["content"][0]["type"], "thinking",
        "the history goes as sent"
    );
    assert!(
        sent[0]["body"].get("context_management").is_none(),
        "clearing old thinking needs thinking on: the edit went with it"
    );
    assert_eq!(sent[0]["body"]["tools"], claude_code_request()["tools"]);
}

async fn on_the_users_own_key_the_request_goes_as_sent(db: TestDb) {
    let mock = mock_with_platform_key();
    let app = chat_app(db, &mock, &[]).await;
    let saved = app.call("keys/save", &[("api_key", VALID_KEY)]).await;
    assert_eq!(saved.status(), StatusCode::OK);
    let token = create_token(&app, "claude-code").await;
    let request = claude_code_request();
    let answer = post(&app, &token, "/v1/messages", &request).await;
    assert_eq!(answer.status(), StatusCode::OK);
    assert!(answer.headers().get("keyward-adjusted").is_none());
    let sent = mock.received_on("/v1/messages").await;
    assert_eq!(sent[0]["api_key"], VALID_KEY);
    assert_eq!(sent[0]["body"], request, "untouched");

    // The mock checks budgets as Anthropic does: a client's own invalid
    // budget reaches it untouched and comes back as Anthropic's 400.
    for (max_tokens, budget) in [(32_000, 32_000), (32_000, 512)] {
        let mut invalid = claude_code_request();
        invalid["max_tokens"] = json!(max_tokens);
        invalid["thinking"]["budget_tokens"] = json!(budget);
        let answer = post(&app, &token, "/v1/messages", &invalid).await;
        assert_eq!(answer.status(), StatusCode::BAD_REQUEST);
        let error: Value = answer.json().await.unwrap();
        assert_eq!(error["error"]["type"], "invalid_request_error");
        assert!(
            error["error"]["message"]
                .as_str()
                .unwrap()
                .contains("budget_tokens"),
            "{error}"
        );
    }
}

async fn the_thinking_budget_is_lowered_below_a_larger_clamp(db: TestDb) {
    let mock = mock_with_platform_key();
    let app = chat_app(db, &mock, &["--max-tokens", "8192"]).await;
    let token = create_token(&app, "claude-code").await;
    let mut stream = claude_code_request();
    stream["stream"] = json!(true);
    let answer = post(&app, &token, "/v1/messages", &stream).await;
    assert_eq!(answer.status(), StatusCode::OK);
    assert_eq!(answer.headers()["keyward-adjusted"], "thinking-budget=4096");
    let text = answer.text().await.unwrap();
    assert!(text.contains("message_stop"), "{text}");
    let sent = mock.received_on("/v1/messages").await;
    assert_eq!(sent[0]["max_tokens"], 8192);
    assert_eq!(sent[0]["body"]["thinking"]["budget_tokens"], 4096);
    assert_eq!(
        sent[0]["body"]["context_management"],
        claude_code_request()["context_management"],
        "thinking stays on, and so does the edit"
    );

    // A budget the clamp leaves valid is not touched, and nothing is said.
    let mut fits = claude_code_request();
    fits["thinking"]["budget_tokens"] = json!(2_000);
    let answer = post(&app, &token, "/v1/messages", &fits).await;
    assert_eq!(answer.status(), StatusCode::OK);
    assert!(answer.headers().get("keyward-adjusted").is_none());
    let sent = mock.received_on("/v1/messages").await;
    assert_eq!(sent[1]["body"]["thinking"]["budget_tokens"], 2_000);
}

async fn a_model_outside_the_plan_names_the_models_and_the_variables_to_set(db: TestDb) {
    let mock = mock_with_platform_key();
    let app = chat_app(db, &mock, &[]).await;
    let token = create_token(&app, "claude-code").await;
    for path in ["/v1/messages", "/v1/messages/count_tokens"] {
        let answer = post(&app, &token, path, &body("claude-opus-4-1", 100, "hi")).await;
        assert_eq!(answer.status(), StatusCode::FORBIDDEN);
        let error: Value = answer.json().await.unwrap();
        assert_eq!(error["error"]["type"], "permission_error");
        let message = error["error"]["message"].as_str().unwrap();
        for needed in [
            "claude-opus-4-1",
            "claude-haiku-4-5",
            "ANTHROPIC_MODEL",
            "ANTHROPIC_SMALL_FAST_MODEL",
        ] {
            assert!(message.contains(needed), "{path}: {message}");
        }
    }
    assert!(mock.received_on("/v1/messages").await.is_empty());
}

async fn gateway_calls_are_grouped_by_claude_code_session(db: TestDb) {
    let mock = mock_with_platform_key();
    let app = chat_app(db, &mock, &[]).await;
    let token = create_token(&app, "claude-code").await;
    let first = "0f8e2a4c-5d6b-4e7f-8a9b-0c1d2e3f4a5b";
    let second = "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d";
    let request = body("claude-haiku-4-5", 100, "hi");
    let calls = [
        (Some(first), Some("main")),
        (Some(first), Some("subagent-1")),
        (Some(second), None),
        (None, Some("main")),
        (Some("not a session id!"), None),
    ];
    for (session, agent) in calls {
        let mut call = reqwest::Client::new()
            .post(app.url("/v1/messages"))
            .header("authorization", format!("Bearer {token}"))
            .header("anthropic-version", "2023-06-01")
            .json(&request);
        if let Some(session) = session {
            call = call.header("x-claude-code-session-id", session);
        }
        if let Some(agent) = agent {
            call = call.header("x-claude-code-agent-id", agent);
        }
        assert_eq!(call.send().await.unwrap().status(), StatusCode::OK);
    }
    // A gateway call's ledger row is queued, not written before the reply.
    balanced_books(&app.db).await;
    let usage: Value = app.call("usage/mine", &[]).await.json().await.unwrap();
    let sessions = usage["sessions"].as_array().unwrap();
    assert_eq!(sessions.len(), 2, "{sessions:?}");
    // Newest first.
    assert_eq!(sessions[0]["session"], second);
    assert_eq!(sessions[0]["calls"], 1);
    assert_eq!(sessions[1]["session"], first);
    assert_eq!(sessions[1]["calls"], 2);
    assert_eq!(sessions[1]["agents"], 2, "the main agent and a subagent");
    assert_eq!(sessions[0]["agents"], 0);
    let tokens: i64 = sqlx::query_scalar(
        "SELECT CAST(SUM(input_tokens + output_tokens) AS BIGINT) FROM usage_ledger WHERE client_session = $1",
    )
    .bind(first)
    .fetch_one(&app.db)
    .await
    .unwrap();
    assert_eq!(sessions[1]["tokens"], tokens);
    assert!(sessions[1]["cost_micro_usd"].as_i64().unwrap() > 0);
}

db_tests!(
    gateway_calls_are_grouped_by_claude_code_session,
    on_the_users_own_key_the_request_goes_as_sent,
    a_model_outside_the_plan_names_the_models_and_the_variables_to_set,
    thinking_is_turned_off_when_the_clamp_leaves_no_room_for_it,
    the_thinking_budget_is_lowered_below_a_larger_clamp,
);
