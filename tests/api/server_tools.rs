//! Anthropic's server tools bill per use on top of tokens: on the platform
//! key a plan refuses them unless it allows them, and where they run their
//! uses are priced and counted.

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::{
    books::balanced_books,
    chat_helpers::{chat_app, mock_with_platform_key},
    db_tests,
    gateway::{body, create_token, ledger_rows, post},
    helpers::TestDb,
};

const GENEROUS: [&str; 4] = [
    "--requests-per-day",
    "1000",
    "--requests-per-minute",
    "1000",
];

async fn server_tools_are_refused_on_the_free_plan_and_priced_where_allowed(db: TestDb) {
    let mock = mock_with_platform_key();
    let app = chat_app(db, &mock, &GENEROUS).await;
    let token = create_token(&app, "t").await;
    let mut search = body("claude-haiku-4-5", 100, "what is new?");
    search["tools"] =
        json!([{ "type": "web_search_20250305", "name": "web_search", "max_uses": 3 }]);
    let refused = post(&app, &token, "/v1/messages", &search).await;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    let error: Value = refused.json().await.unwrap();
    assert_eq!(error["error"]["type"], "permission_error");
    let message = error["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("\"free\"") && message.contains("web_search_20250305"),
        "{message}"
    );
    let mut mcp = body("claude-haiku-4-5", 100, "hi");
    mcp["mcp_servers"] = json!([{ "type": "url", "url": "https://mcp.example/sse", "name": "x" }]);
    assert_eq!(post(&app, &token, "/v1/messages", &mcp).await.status(), 403);
    assert!(
        mock.received_on("/v1/messages").await.is_empty(),
        "nothing went upstream"
    );

    let mut custom = body("claude-haiku-4-5", 100, "hi");
    custom["tools"] = json!([{ "name": "web_search", "description": "mine", "input_schema": { "type": "object" } }]);
    assert_eq!(
        post(&app, &token, "/v1/messages", &custom).await.status(),
        200,
        "custom tools pass"
    );

    let plans: Value = app.call("admin/plans", &[]).await.json().await.unwrap();
    let free_id = plans[0]["id"].as_i64().unwrap().to_string();
    let saved = app
        .call(
            "admin/save_plan",
            &[
                ("id", free_id.as_str()),
                ("name", "free"),
                ("requests_per_minute", "1000"),
                ("requests_per_day", "1000"),
                ("tokens_per_day", ""),
                ("models[]", "claude-haiku-4-5"),
                ("max_tokens", "1024"),
                ("allows_server_tools", "on"),
            ],
        )
        .await;
    assert_eq!(saved.status(), StatusCode::OK, "{:?}", saved.text().await);
    let allowed = post(&app, &token, "/v1/messages", &search).await;
    assert_eq!(allowed.status(), StatusCode::OK);
    let reply: Value = allowed.json().await.unwrap();
    assert_eq!(reply["usage"]["server_tool_use"]["web_search_requests"], 1);
    ledger_rows(&app, 2).await;
    let (uses, input, output, cost): (i64, i64, i64, i64) = sqlx::query_as(
        "SELECT server_tool_uses, input_tokens, output_tokens, cost_micro_usd FROM usage_ledger ORDER BY id DESC LIMIT 1",
    )
    .fetch_one(&app.db)
    .await
    .unwrap();
    assert_eq!(uses, 1);
    // Haiku: $1/M input, $5/M output, plus $10 per 1,000 searches.
    assert_eq!(cost, input + 5 * output + 10_000);
    balanced_books(&app.db).await;
}

db_tests!(server_tools_are_refused_on_the_free_plan_and_priced_where_allowed);
