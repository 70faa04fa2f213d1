//! The usage ledger: one row per upstream call, tokens as reported, exact cost.

use sqlx::Row;

use crate::{
    chat_helpers::{chat_app, mock_with_platform_key, send, wait_until_reply_settles},
    db_tests,
    helpers::TestDb,
};

#[derive(Debug)]
struct Entry {
    key_source: String,
    model: String,
    input: i64,
    output: i64,
    cost: i64,
    status: String,
    error_type: Option<String>,
    request_id: Option<String>,
    ttft_ms: Option<i64>,
    message_id: Option<i64>,
}

async fn entries(app: &crate::helpers::TestApp) -> Vec<Entry> {
    sqlx::query("SELECT * FROM usage_ledger ORDER BY id")
        .fetch_all(&app.db)
        .await
        .unwrap()
        .iter()
        .map(|r| Entry {
            key_source: r.get("key_source"),
            model: r.get("model"),
            input: r.get("input_tokens"),
            output: r.get("output_tokens"),
            cost: r.get("cost_micro_usd"),
            status: r.get("status"),
            error_type: r.get("error_type"),
            request_id: r.get("request_id"),
            ttft_ms: r.get("ttft_ms"),
            message_id: r.get("message_id"),
        })
        .collect()
}

async fn every_kind_of_call_leaves_exactly_one_accurate_row(db: TestDb) {
    let mock = mock_with_platform_key();
    let app = chat_app(db, &mock, &["--requests-per-minute", "100"]).await;

    let complete = send(&app, None, "normal").await;
    let cut = send(&app, None, "cut me mock:cut").await;
    let failed = send(&app, None, "fail mock:529").await;
    // Stopped: drop the stream after the first delta.
    let mut response = app
        .client
        .post(app.url("/chat/send"))
        .json(&serde_json::json!({ "conversation_id": null, "text": "slow mock:slow", "model": "claude-haiku-4-5" }))
        .send()
        .await
        .unwrap();
    let mut seen = String::new();
    while !seen.contains("\"type\":\"delta\"") {
        seen.push_str(&String::from_utf8_lossy(
            &response.chunk().await.unwrap().unwrap(),
        ));
    }
    drop(response);
    let started: serde_json::Value = serde_json::from_str(seen.lines().next().unwrap()).unwrap();
    let stopped_id = started["assistant_message_id"].as_i64().unwrap();
    wait_until_reply_settles(&app, stopped_id).await;
    // The ledger row is written right after the message row; wait for it too.
    for _ in 0..100 {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM usage_ledger")
            .fetch_one(&app.db)
            .await
            .unwrap();
        if n == 4 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }

    let rows = entries(&app).await;
    assert_eq!(rows.len(), 4, "{rows:?}");
    assert_eq!(mock.received_on("/v1/messages").await.len(), 4);

    let by_status = |status: &str| {
        rows.iter()
            .find(|r| r.status == status)
            .unwrap_or_else(|| panic!("no {status} row in {rows:?}"))
    };
    let ok = by_status("200");
    assert_eq!(
        ok.input,
        complete.finished()["input_tokens"].as_i64().unwrap()
    );
    assert_eq!(
        ok.output,
        complete.finished()["output_tokens"].as_i64().unwrap()
    );
    assert_eq!(
        ok.cost,
        ok.input + ok.output * 5,
        "Haiku: $1 in, $5 out per million = µ$ per token"
    );
    assert_eq!(
        (ok.key_source.as_str(), ok.model.as_str()),
        ("platform", "claude-haiku-4-5")
    );
    assert!(ok.request_id.as_deref().unwrap().starts_with("req_mock_"));
    assert!(ok.ttft_ms.is_some());
    assert_eq!(
        ok.message_id,
        complete.started()["assistant_message_id"].as_i64()
    );

    let cut_row = by_status("stream_cut");
    assert_eq!(
        cut_row.output,
        cut.finished()["output_tokens"].as_i64().unwrap()
    );
    assert!(cut_row.input > 0, "input usage from message_start is kept");
    assert_eq!(cut_row.error_type.as_deref(), Some("stream_cut"));

    let failed_row = by_status("529");
    assert_eq!(
        (failed_row.input, failed_row.output, failed_row.cost),
        (0, 0, 0)
    );
    assert_eq!(failed_row.error_type.as_deref(), Some("overloaded_error"));
    assert!(failed.finished()["error"]
        .as_str()
        .unwrap()
        .contains("overloaded"));

    let stopped_row = by_status("stopped");
    assert!(
        stopped_row.input > 0 && stopped_row.output > 0,
        "{stopped_row:?}"
    );
    assert_eq!(stopped_row.message_id, Some(stopped_id));
}

async fn the_usage_page_shows_todays_use_and_recent_calls(db: TestDb) {
    let mock = mock_with_platform_key();
    let app = chat_app(db, &mock, &["--requests-per-day", "7"]).await;
    send(&app, None, "one").await;
    send(&app, None, "two").await;
    let usage: serde_json::Value = app.call("usage/mine", &[]).await.json().await.unwrap();
    assert_eq!(usage["plan"], "free");
    assert_eq!(usage["requests_today"], 2);
    assert_eq!(usage["requests_per_day"], 7);
    let recent = usage["recent"].as_array().unwrap();
    assert_eq!(recent.len(), 2);
    assert_eq!(recent[0]["paid_by"], "platform");
    let settled: i64 = entries(&app).await.iter().map(|e| e.input + e.output).sum();
    assert_eq!(
        usage["tokens_today"].as_i64().unwrap(),
        settled,
        "today's tokens are the settled real usage"
    );
    let page = app.get("/settings").await.text().await.unwrap();
    assert!(page.contains("2 of 7"), "the bar's numbers are on the page");
}

db_tests!(
    every_kind_of_call_leaves_exactly_one_accurate_row,
    the_usage_page_shows_todays_use_and_recent_calls
);
