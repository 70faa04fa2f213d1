//! One call lifecycle for chat and gateway: a call counts from the moment
//! it is sent upstream, whatever the client or the upstream does next, and
//! is billed at least what it reported or relayed. Only a call that never
//! left keyward gives its reservation back.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::{
    books::{balanced_books, books},
    chat_helpers::{chat_app, mock_with_platform_key, send, wait_until_reply_settles},
    db_tests,
    gateway::{body, create_token, ledger_rows, post},
    helpers::{spawn_app_with, TestApp, TestDb, PASSWORD},
};

const GENEROUS: [&str; 4] = [
    "--requests-per-day",
    "1000",
    "--requests-per-minute",
    "1000",
];

/// The most tokens `text` can be, by keyward's own estimator.
fn relayed_estimate(text: &str) -> i64 {
    keyward::server::calls::estimate::TextBytes::of(text).tokens()
}

/// The text deltas in a piece of an SSE stream.
fn deltas_in(sse: &str) -> String {
    sse.lines()
        .filter_map(|line| line.strip_prefix("data: "))
        .filter_map(|data| serde_json::from_str::<Value>(data).ok())
        .filter(|event| event["type"] == "content_block_delta")
        .filter_map(|event| event["delta"]["text"].as_str().map(str::to_owned))
        .collect()
}

/// The output tokens a `message_delta` reported, if one came.
fn final_output(sse: &str) -> Option<i64> {
    sse.lines()
        .filter_map(|line| line.strip_prefix("data: "))
        .filter_map(|data| serde_json::from_str::<Value>(data).ok())
        .filter(|event| event["type"] == "message_delta")
        .find_map(|event| event["usage"]["output_tokens"].as_i64())
}

fn stream_request(text: &str) -> Value {
    let mut request = body("claude-haiku-4-5", 1000, text);
    request["stream"] = json!(true);
    request
}

/// Sends `request` with the mock's `fault` word in its message (keyward
/// forwards the body, not a test's headers).
async fn send_with_fault(
    app: &TestApp,
    client: &reqwest::Client,
    token: &str,
    fault: &str,
    request: &Value,
) -> reqwest::Result<reqwest::Response> {
    client
        .post(app.url("/v1/messages"))
        .header("x-api-key", token)
        .json(&with_fault(request, fault))
        .send()
        .await
}

fn with_fault(request: &Value, fault: &str) -> Value {
    let mut request = request.clone();
    let text = request["messages"][0]["content"]
        .as_str()
        .unwrap_or_default();
    request["messages"][0]["content"] = json!(format!("{text} mock:{fault}"));
    request
}

/// Waits until the mock has seen `count` calls on `/v1/messages`.
async fn upstream_saw(mock: &crate::mock::MockUpstream, count: usize) {
    for _ in 0..300 {
        if mock.received_on("/v1/messages").await.len() >= count {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the upstream never saw {count} calls");
}

async fn a_client_that_hangs_up_before_the_answer_still_uses_its_request(db: TestDb) {
    let mock = mock_with_platform_key();
    let app = chat_app(
        db,
        &mock,
        &["--requests-per-day", "3", "--requests-per-minute", "100"],
    )
    .await;
    let token = create_token(&app, "t").await;
    let impatient = reqwest::Client::builder()
        .timeout(Duration::from_millis(700))
        .build()
        .unwrap();
    let request = body("claude-haiku-4-5", 100, "hello");
    for i in 0..3 {
        let hung_up = send_with_fault(&app, &impatient, &token, "hang", &request).await;
        assert!(hung_up.is_err(), "the client gave up on call {i}");
        upstream_saw(&mock, i + 1).await;
    }
    let refused = post(&app, &token, "/v1/messages", &request).await;
    assert_eq!(
        refused.status(),
        StatusCode::TOO_MANY_REQUESTS,
        "three calls that reached Anthropic used the day's three requests"
    );
    assert_eq!(mock.received_on("/v1/messages").await.len(), 3);
    let books = balanced_books(&app.db).await;
    assert_eq!(books.requests, 3);
    let rows = ledger_rows(&app, 3).await;
    for row in &rows {
        assert_eq!(row.4, "stopped");
        assert!(row.1 > 0, "the input is billed at its estimate: {row:?}");
        assert_eq!(
            row.2, 100,
            "a JSON reply that never came bills its max_tokens"
        );
    }
}

/// Where a streaming client hangs up.
#[derive(Debug, Clone, Copy)]
enum Stage {
    AfterMessageStart,
    MidStream,
    AfterLastDelta,
}

async fn gateway_hang_ups_at_every_stage_are_counted_and_settled(db: TestDb) {
    let mock = mock_with_platform_key();
    let app = chat_app(db, &mock, &GENEROUS).await;
    let token = create_token(&app, "t").await;
    let client = reqwest::Client::new();
    let stages = [
        Stage::AfterMessageStart,
        Stage::MidStream,
        Stage::AfterLastDelta,
    ];
    let mut relayed = Vec::new();
    for stage in stages {
        let request = stream_request("tell me something");
        let mut response = send_with_fault(&app, &client, &token, "slow", &request)
            .await
            .unwrap();
        let mut seen = String::new();
        let done = |seen: &str| match stage {
            Stage::AfterMessageStart => seen.contains("event: message_start"),
            Stage::MidStream => seen.matches("event: content_block_delta").count() >= 3,
            Stage::AfterLastDelta => seen.contains("event: message_delta"),
        };
        while !done(&seen) {
            let chunk = response.chunk().await.unwrap().expect("the stream goes on");
            seen.push_str(&String::from_utf8_lossy(&chunk));
        }
        drop(response);
        relayed.push((deltas_in(&seen), final_output(&seen)));
    }
    let books = balanced_books(&app.db).await;
    assert_eq!(books.requests, 3, "{books:?}");
    let rows = ledger_rows(&app, 3).await;
    for ((row, (text, reported)), stage) in rows.iter().zip(&relayed).zip(stages) {
        assert_eq!(row.4, "stopped", "{stage:?}");
        assert!(row.1 > 0, "{stage:?}: input from message_start");
        match reported {
            // The final usage arrived: it is what Anthropic bills.
            Some(output) => assert_eq!(row.2, *output, "{stage:?}"),
            None => assert!(
                row.2 >= relayed_estimate(text),
                "{stage:?}: output {} < relayed {}",
                row.2,
                relayed_estimate(text)
            ),
        }
    }
}

async fn chat_hang_ups_before_and_during_the_reply_are_counted_and_settled(db: TestDb) {
    let mock = mock_with_platform_key();
    let app = chat_app(db, &mock, &GENEROUS).await;
    // Before Anthropic answers, and after a few deltas.
    for (text, deltas) in [("mock:hang", 0), ("mock:slow", 3)] {
        let mut response = app
            .client
            .post(app.url("/chat/send"))
            .json(&json!({ "conversation_id": null, "text": text, "model": "claude-haiku-4-5" }))
            .send()
            .await
            .unwrap();
        let mut seen = String::new();
        while !seen.contains("\"started\"") || seen.matches("\"delta\"").count() < deltas {
            let chunk = response.chunk().await.unwrap().expect("the turn goes on");
            seen.push_str(&String::from_utf8_lossy(&chunk));
        }
        let started: Value = serde_json::from_str(seen.lines().next().unwrap()).unwrap();
        upstream_saw(&mock, if deltas == 0 { 1 } else { 2 }).await;
        drop(response);
        let message_id = started["assistant_message_id"].as_i64().unwrap();
        let (status, _) = wait_until_reply_settles(&app, message_id).await;
        assert_eq!(status, "stopped", "{text}");
    }
    let books = balanced_books(&app.db).await;
    assert_eq!(books.requests, 2, "{books:?}");
    let rows = ledger_rows(&app, 2).await;
    assert!(
        rows.iter().all(|row| row.4 == "stopped" && row.1 > 0),
        "{rows:?}"
    );
}

async fn an_upstream_cut_bills_at_least_the_relayed_text(db: TestDb) {
    let mock = mock_with_platform_key();
    let app = chat_app(db, &mock, &GENEROUS).await;
    let token = create_token(&app, "t").await;
    let long = format!("mock:echo {}mock:cut", "plenty of words ".repeat(250));

    // Gateway: the stream ends without message_delta.
    let response = post(&app, &token, "/v1/messages", &stream_request(&long)).await;
    let mut sse = String::new();
    let mut response = response;
    while let Ok(Some(chunk)) = response.chunk().await {
        sse.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(
        !sse.contains("message_delta"),
        "the mock cut before the end"
    );
    let relayed = deltas_in(&sse);
    assert!(relayed.len() > 1_000, "a third of the reply came through");

    // Chat: the same cut, the partial reply kept.
    let turn = send(&app, None, &long).await;
    assert_eq!(turn.finished()["status"], "stopped");
    let chat_relayed = turn.text();

    let rows = ledger_rows(&app, 2).await;
    assert_eq!(rows[0].4, "stream_cut");
    assert!(rows[0].2 >= relayed_estimate(&relayed), "{:?}", rows[0]);
    assert!(
        rows[1].2 >= relayed_estimate(&chat_relayed),
        "{:?}",
        rows[1]
    );
    assert_eq!(
        turn.finished()["output_tokens"].as_i64().unwrap(),
        rows[1].2,
        "the reply shows what the ledger bills"
    );
    balanced_books(&app.db).await;
}

async fn calls_dropped_at_any_point_settle_exactly_once(db: TestDb) {
    let mock = mock_with_platform_key();
    let app = chat_app(db, &mock, &GENEROUS).await;
    let token = create_token(&app, "t").await;
    // Each client gives up a little later than the one before, so the
    // server drops calls at every await of the lifecycle in turn: before
    // admission, while reserving, while sending, while relaying.
    for step in 0..40u64 {
        let patience = Duration::from_micros(500 + step * 750);
        let request = if step % 2 == 0 {
            stream_request("hello")
        } else {
            body("claude-haiku-4-5", 100, "hello")
        };
        let gateway = reqwest::Client::new()
            .post(app.url("/v1/messages"))
            .header("x-api-key", &token)
            .timeout(patience)
            .json(&with_fault(&request, "slow"))
            .send()
            .await;
        drop(gateway);
        let chat = app
            .client
            .post(app.url("/chat/send"))
            .timeout(patience)
            .json(&json!({ "conversation_id": null, "text": "mock:slow", "model": "claude-haiku-4-5" }))
            .send()
            .await;
        drop(chat);
    }
    let books = balanced_books(&app.db).await;
    let upstream = mock.received_on("/v1/messages").await.len() as i64;
    assert!(
        books.ledger_requests >= upstream,
        "every call that reached Anthropic is in the ledger: {books:?} vs {upstream}"
    );
}

async fn a_call_that_reached_anthropic_counts_even_when_it_failed(db: TestDb) {
    let mock = mock_with_platform_key();
    let app = chat_app(db, &mock, &["--requests-per-day", "1"]).await;
    let failed = send(&app, None, "mock:529").await;
    assert_eq!(failed.finished()["status"], "error");
    let next = send(&app, None, "and now?").await;
    assert_eq!(next.status, 429, "the failed call used the day's request");
    let books = balanced_books(&app.db).await;
    assert_eq!(
        (books.requests, books.tokens),
        (1, 0),
        "an error answer bills no tokens"
    );
}

async fn a_call_that_never_left_keyward_gives_its_reservation_back(db: TestDb) {
    // Nothing listens at the upstream address: the connection is refused.
    let app = spawn_app_with(
        db,
        &[
            "--anthropic-api-key",
            crate::chat_helpers::PLATFORM_KEY,
            "--requests-per-day",
            "1",
        ],
    )
    .await;
    app.signup("ada@example.com", PASSWORD).await;
    for _ in 0..2 {
        let turn = send(&app, None, "hello?").await;
        assert_eq!(turn.status, 200);
        assert_eq!(turn.finished()["status"], "error");
    }
    let books = balanced_books(&app.db).await;
    assert_eq!(books.requests, 0, "{books:?}");
    let unsent: Vec<(i64, String)> =
        sqlx::query_as("SELECT reached_upstream, status FROM usage_ledger ORDER BY id")
            .fetch_all(&app.db)
            .await
            .unwrap();
    assert_eq!(unsent.len(), 2, "each attempt is in the ledger");
    assert!(
        unsent.iter().all(|(reached, _)| *reached == 0),
        "{unsent:?}"
    );
    assert_eq!(unsent[0].1, "connect_error");
}

async fn twenty_chat_turns_reuse_one_upstream_connection(db: TestDb) {
    let mock = mock_with_platform_key();
    let app = chat_app(db, &mock, &GENEROUS).await;
    let mut conversation = None;
    for i in 0..20 {
        let turn = send(&app, conversation, &format!("turn {i}")).await;
        assert_eq!(turn.finished()["status"], "complete");
        conversation = Some(turn.conversation_id());
    }
    let peers: std::collections::BTreeSet<String> = mock
        .received_on("/v1/messages")
        .await
        .iter()
        .map(|r| r["peer"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        peers.len(),
        1,
        "every turn read its reply to the end: {peers:?}"
    );
    let current = books(&app.db).await;
    assert_eq!(current.ledger_requests, 20);
}

db_tests!(
    a_client_that_hangs_up_before_the_answer_still_uses_its_request,
    gateway_hang_ups_at_every_stage_are_counted_and_settled,
    chat_hang_ups_before_and_during_the_reply_are_counted_and_settled,
    an_upstream_cut_bills_at_least_the_relayed_text,
    calls_dropped_at_any_point_settle_exactly_once,
    a_call_that_reached_anthropic_counts_even_when_it_failed,
    a_call_that_never_left_keyward_gives_its_reservation_back,
    twenty_chat_turns_reuse_one_upstream_connection,
);
