//! Automatic prompt caching on chat turns: each turn marks the newest user
//! message as a cache breakpoint, so the next turn reads the conversation
//! so far from Anthropic's cache; the savings are billed, stored and shown.

use serde_json::Value;

use crate::{
    chat_helpers::{chat_app, conversation, mock_with_platform_key, send},
    db_tests,
    helpers::{TestApp, TestDb},
};

/// Haiku's prices in hundredths of a micro-dollar per token: input,
/// 5-minute cache write, cache read, output.
const INPUT: i64 = 100;
const CACHE_WRITE: i64 = 125;
const CACHE_READ: i64 = 10;
const OUTPUT: i64 = 500;
/// A one-hour cache write: twice the input price.
const CACHE_WRITE_1H: i64 = 200;

/// A ledger row's input, cache writes, cache reads, output and cost.
type Billed = (i64, i64, i64, i64, i64);

/// Above Haiku 4.5's 4,096-token minimum from the first turn on.
fn long_opening(topic: &str) -> String {
    format!(
        "Here is a long document about {topic}. {}",
        "lorem ipsum ".repeat(1_600)
    )
}

/// Five turns of one conversation; its id and the calls' ledger rows.
async fn five_turns(app: &TestApp, opening: &str) -> (i64, Vec<Billed>) {
    let before: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(id), 0) FROM usage_ledger")
        .fetch_one(&app.db)
        .await
        .unwrap();
    let first = send(app, None, opening).await;
    assert_eq!(first.status, 200, "{:?}", first.events);
    let id = first.conversation_id();
    for turn in 2..=5 {
        let reply = send(app, Some(id), &format!("Question number {turn}?")).await;
        assert_eq!(reply.status, 200, "{:?}", reply.events);
    }
    let rows = sqlx::query_as(
        "SELECT input_tokens, cache_creation_tokens, cache_read_tokens, output_tokens, cost_micro_usd \
         FROM usage_ledger WHERE id > $1 ORDER BY id",
    )
    .bind(before)
    .fetch_all(&app.db)
    .await
    .unwrap();
    (id, rows)
}

/// Sets the free plan's prompt caching (`5m`, `1h` or `off`) as an admin
/// would, its limits out of the way.
async fn set_free_plan_caching(app: &TestApp, caching: &str) {
    let plans: Value = app.call("admin/plans", &[]).await.json().await.unwrap();
    let free = plans
        .as_array()
        .unwrap()
        .iter()
        .find(|plan| plan["name"] == "free")
        .unwrap();
    let id = free["id"].to_string();
    let saved = app
        .call(
            "admin/save_plan",
            &[
                ("id", id.as_str()),
                ("name", "free"),
                ("requests_per_minute", ""),
                ("requests_per_day", ""),
                ("tokens_per_day", ""),
                ("models[]", "claude-haiku-4-5"),
                ("max_tokens", "1024"),
                ("prompt_caching", caching),
            ],
        )
        .await;
    assert_eq!(saved.status(), 200, "{:?}", saved.text().await);
    let saved: Value = saved.json().await.unwrap();
    assert_eq!(saved["prompt_caching"], caching);
}

fn rounded(centi: i64) -> i64 {
    (centi + 50) / 100
}

async fn a_five_turn_conversation_reads_its_earlier_turns_from_the_cache(db: TestDb) {
    let mock = mock_with_platform_key();
    let app = chat_app(db, &mock, &[]).await;
    let opening = long_opening("caching");
    let (id, rows) = five_turns(&app, &opening).await;

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
        assert!(newest["content"][0]["cache_control"].get("ttl").is_none());
    }

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
    let today = dashboard["days"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(
        today["saved_by_caching"], saved_in_all,
        "the per-day series"
    );
    let page = app.get("/admin").await.text().await.unwrap();
    let day = today["day"].as_str().unwrap();
    let shown = format!(
        r#"data-day="{day}" data-saved-usd="{:.6}""#,
        saved_in_all as f64 / 1e6
    );
    assert!(page.contains(&shown), "the chart's bar for today: {shown}");
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

    // The same conversation with caching off (the plan's switch) sends no
    // breakpoint, reads nothing from the cache, and costs more by exactly
    // what was shown as saved.
    set_free_plan_caching(&app, "off").await;
    let (_, uncached) = five_turns(&app, &opening).await;
    let sent = mock.received_on("/v1/messages").await;
    assert!(sent[5..]
        .iter()
        .all(|request| !request["body"].to_string().contains("cache_control")));
    let total = |rows: &[Billed]| rows.iter().map(|row| row.4).sum::<i64>();
    assert!(uncached.iter().all(|row| row.1 == 0 && row.2 == 0));
    assert_eq!(
        total(&uncached) - total(&rows),
        saved_in_all,
        "uncached {uncached:?}, cached {rows:?}"
    );
}

async fn an_hour_long_cache_is_asked_for_and_billed_at_twice_the_input_price(db: TestDb) {
    let mock = mock_with_platform_key();
    let app = chat_app(db, &mock, &[]).await;
    set_free_plan_caching(&app, "1h").await;
    let (_, rows) = five_turns(&app, &long_opening("a long lunch")).await;
    for request in mock.received_on("/v1/messages").await {
        let newest = request["body"]["messages"]
            .as_array()
            .unwrap()
            .last()
            .unwrap()
            .clone();
        assert_eq!(newest["content"][0]["cache_control"]["ttl"], "1h");
        assert_eq!(
            request["anthropic_beta"], "extended-cache-ttl-2025-04-11",
            "sent with the beta it was introduced under"
        );
    }
    let (input, written, read, output, cost) = rows[0];
    assert!(written > 4_096 && read == 0, "{rows:?}");
    assert_eq!(
        cost,
        rounded(input * INPUT + written * CACHE_WRITE_1H + output * OUTPUT),
        "an hour-long write costs twice the input price"
    );
    let (input, written, read, output, cost) = rows[1];
    assert!(read > 4_096, "the next turn reads it: {rows:?}");
    assert_eq!(
        cost,
        rounded(input * INPUT + written * CACHE_WRITE_1H + read * CACHE_READ + output * OUTPUT)
    );
}

db_tests!(
    a_five_turn_conversation_reads_its_earlier_turns_from_the_cache,
    an_hour_long_cache_is_asked_for_and_billed_at_twice_the_input_price
);
