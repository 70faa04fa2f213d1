//! Automatic prompt caching on chat turns: each turn marks the newest user
//! message as a cache breakpoint, so the next turn reads the conversation
//! so far from Anthropic's cache; the savings are billed, stored and shown.

use serde_json::Value;

use crate::{
    chat_helpers::{chat_app, conversation, mock_with_platform_key, send},
    db_tests,
    helpers::TestDb,
};

/// Haiku's prices in hundredths of a micro-dollar per token: input,
/// 5-minute cache write, cache read, output.
const INPUT: i64 = 100;
const CACHE_WRITE: i64 = 125;
const CACHE_READ: i64 = 10;
const OUTPUT: i64 = 500;

fn rounded(centi: i64) -> i64 {
    (centi + 50) / 100
}

async fn a_five_turn_conversation_reads_its_earlier_turns_from_the_cache(db: TestDb) {
    let mock = mock_with_platform_key();
    let app = chat_app(db, &mock, &[]).await;
    // Above Haiku 4.5's 4,096-token minimum from the first turn on.
    let opening = format!(
        "Here is a long document to discuss. {}",
        "lorem ipsum ".repeat(1_600)
    );
    let first = send(&app, None, &opening).await;
    assert_eq!(first.status, 200, "{:?}", first.events);
    let id = first.conversation_id();
    for turn in 2..=5 {
        let reply = send(&app, Some(id), &format!("Question number {turn}?")).await;
        assert_eq!(reply.status, 200, "{:?}", reply.events);
    }

    // Every turn marked exactly one breakpoint, on its newest message.
    let sent = mock.received_on("/v1/messages").await;
    assert_eq!(sent.len(), 5);
    for body in sent.iter().map(|request| &request["body"]) {
        let messages = body["messages"].as_array().unwrap();
        assert_eq!(
            body.to_string().matches("cache_control").count(),
            1,
            "{body}"
        );
        let newest = messages.last().unwrap();
        assert_eq!(newest["content"][0]["cache_control"]["type"], "ephemeral");
    }

    let rows: Vec<(i64, i64, i64, i64, i64)> = sqlx::query_as(
        "SELECT input_tokens, cache_creation_tokens, cache_read_tokens, output_tokens, cost_micro_usd \
         FROM usage_ledger ORDER BY id",
    )
    .fetch_all(&app.db)
    .await
    .unwrap();
    assert_eq!(rows.len(), 5);
    let (_, written, read, _, _) = rows[0];
    assert!(
        written > 4_096 && read == 0,
        "the first turn writes the cache: {rows:?}"
    );
    let mut previous_prompt = 0;
    for (turn, &(input, written, read, output, cost)) in rows.iter().enumerate() {
        if turn > 0 {
            assert_eq!(
                read,
                previous_prompt,
                "turn {} reads the prompt of the turn before: {rows:?}",
                turn + 1
            );
            assert!(input + written < read / 10, "the rest is small: {rows:?}");
        }
        previous_prompt = input + written + read;
        let billed =
            rounded(input * INPUT + written * CACHE_WRITE + read * CACHE_READ + output * OUTPUT);
        assert_eq!(cost, billed, "turn {}", turn + 1);
    }

    // Each reply says what it read from the cache and what that saved:
    // the uncached price of the cached tokens less what they cost.
    let view = conversation(&app, id).await;
    let replies: Vec<&Value> = view["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|message| message["role"] == "assistant")
        .collect();
    assert_eq!(replies.len(), 5);
    let mut saved_in_all = 0;
    for (reply, &(input, written, read, output, cost)) in replies.iter().zip(&rows) {
        let uncached = rounded((input + written + read) * INPUT + output * OUTPUT);
        assert_eq!(reply["cache_read_tokens"], read);
        assert_eq!(reply["saved_micro_usd"], uncached - cost);
        saved_in_all += uncached - cost;
    }
    assert!(
        replies[0]["saved_micro_usd"].as_i64().unwrap() < 0,
        "writing the cache costs a quarter more"
    );
    assert!(
        saved_in_all > 0,
        "over five turns caching pays: {saved_in_all} µ$"
    );

    // The same savings everywhere they are shown: the ledger, the user's
    // Settings, the admin's totals (the first account is the admin), the
    // CSV export.
    let in_ledger: i64 =
        sqlx::query_scalar("SELECT CAST(SUM(saved_micro_usd) AS BIGINT) FROM usage_ledger")
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert_eq!(in_ledger, saved_in_all);
    let usage: Value = app.call("usage/mine", &[]).await.json().await.unwrap();
    assert_eq!(usage["saved_today"], saved_in_all);
    assert_eq!(usage["saved_this_month"], saved_in_all);
    let dashboard: Value = app
        .call("admin/dashboard", &[("period[days]", "7")])
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(dashboard["totals"]["saved_by_caching"], saved_in_all);
    let csv = app
        .get("/admin/export.csv?days=7")
        .await
        .text()
        .await
        .unwrap();
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let column = header
        .iter()
        .position(|name| *name == "saved_by_caching_usd")
        .expect("a savings column");
    let in_csv: f64 = lines
        .map(|line| line.split(',').nth(column).unwrap().parse::<f64>().unwrap())
        .sum();
    assert!(
        (in_csv * 1e6 - saved_in_all as f64).abs() < 0.5,
        "{in_csv} in the CSV, {saved_in_all} µ$"
    );
}

db_tests!(a_five_turn_conversation_reads_its_earlier_turns_from_the_cache);
