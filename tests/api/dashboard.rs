//! The admin dashboard's numbers, management actions and CSV export,
//! checked against the ledger itself.

use reqwest::StatusCode;
use serde_json::Value;

use crate::{
    chat_helpers::{chat_app, mock_with_platform_key, send},
    db_tests,
    helpers::{assert_redirect, spawn_app, TestApp, TestDb, PASSWORD},
};

async fn seed(app: &TestApp, rows: usize) {
    let backend = keyward::server::db::Backend::of_url(&app.database_url);
    keyward::server::admin::seed::seed_demo(&app.db, backend, rows, app.clock.now_ms())
        .await
        .unwrap();
}

async fn ledger_sum(app: &TestApp, sql: &str, from_ms: i64, until_ms: i64) -> i64 {
    sqlx::query_scalar::<_, i64>(&format!(
        "SELECT CAST(COALESCE({sql}, 0) AS BIGINT) FROM usage_ledger WHERE at >= $1 AND at < $2"
    ))
    .bind(from_ms)
    .bind(until_ms)
    .fetch_one(&app.db)
    .await
    .unwrap()
}

async fn user_sum(app: &TestApp, id: i64, sql: &str, from_ms: i64, until_ms: i64) -> i64 {
    sqlx::query_scalar::<_, i64>(&format!(
        "SELECT CAST(COALESCE({sql}, 0) AS BIGINT) FROM usage_ledger WHERE user_id = $1 AND at >= $2 AND at < $3"
    ))
    .bind(id)
    .bind(from_ms)
    .bind(until_ms)
    .fetch_one(&app.db)
    .await
    .unwrap()
}

async fn dashboard_numbers_equal_sums_over_the_ledger(db: TestDb) {
    let app = spawn_app(db).await;
    app.signup("admin@example.com", PASSWORD).await;
    seed(&app, 4_000).await;
    let now = app.clock.now_ms();
    let day = 24 * 3_600_000;
    let until = now - now.rem_euclid(day) + day;
    let from = until - 30 * day;

    let dashboard: Value = app
        .call("admin/dashboard", &[("period[days]", "30")])
        .await
        .json()
        .await
        .unwrap();
    let totals = &dashboard["totals"];
    let sum = |sql: &'static str| ledger_sum(&app, sql, from, until);
    assert_eq!(totals["requests"], sum("COUNT(*)").await);
    assert_eq!(
        totals["platform_cost"],
        sum("SUM(CASE WHEN key_source = 'platform' THEN cost_micro_usd ELSE 0 END)").await
    );
    assert_eq!(
        totals["user_cost"],
        sum("SUM(CASE WHEN key_source = 'user' THEN cost_micro_usd ELSE 0 END)").await
    );
    assert_eq!(totals["input_tokens"], sum("SUM(input_tokens)").await);
    assert_eq!(totals["output_tokens"], sum("SUM(output_tokens)").await);
    assert_eq!(
        totals["errors"],
        sum("SUM(CASE WHEN status = '200' THEN 0 ELSE 1 END)").await
    );
    assert_eq!(totals["active_users"], sum("COUNT(DISTINCT user_id)").await);
    assert_eq!(dashboard["days"].as_array().unwrap().len(), 30);
    let per_day_requests: i64 = dashboard["days"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["platform_requests"].as_i64().unwrap() + d["user_requests"].as_i64().unwrap())
        .sum();
    assert_eq!(per_day_requests, totals["requests"].as_i64().unwrap());
    let latencies: Vec<i64> = sqlx::query_scalar(
        "SELECT latency_ms FROM usage_ledger WHERE at >= $1 AND at < $2 ORDER BY latency_ms",
    )
    .bind(from)
    .bind(until)
    .fetch_all(&app.db)
    .await
    .unwrap();
    let bucketed = |share: f64| {
        let rank = (latencies.len() as f64 * share).ceil() as usize;
        use keyward::server::db::rollups::{bucket_upper_edge, latency_bucket};
        bucket_upper_edge(latency_bucket(latencies[rank - 1]))
    };
    assert_eq!(dashboard["latency_p50_ms"], bucketed(0.5));
    assert_eq!(dashboard["latency_p95_ms"], bucketed(0.95));
    assert!(
        dashboard["latency_p50_ms"].as_i64().unwrap()
            <= dashboard["latency_p95_ms"].as_i64().unwrap()
    );

    // The users table: the top spender's numbers match the ledger too.
    let page: Value = app
        .call("admin/users", &[("period[days]", "30"), ("sort", "-cost")])
        .await
        .json()
        .await
        .unwrap();
    let top = &page["users"][0];
    let id = top["id"].as_i64().unwrap();
    assert_eq!(
        top["cost"],
        user_sum(&app, id, "SUM(cost_micro_usd)", from, until).await
    );
    assert_eq!(
        top["platform_requests"],
        user_sum(
            &app,
            id,
            "SUM(CASE WHEN key_source = 'platform' THEN 1 ELSE 0 END)",
            from,
            until
        )
        .await
    );
    assert_eq!(
        top["user_requests"],
        user_sum(
            &app,
            id,
            "SUM(CASE WHEN key_source = 'user' THEN 1 ELSE 0 END)",
            from,
            until
        )
        .await
    );
    let second = page["users"][1]["cost"].as_i64().unwrap();
    assert!(top["cost"].as_i64().unwrap() >= second, "sorted by cost");

    // The default page shows the last 7 days in the table's data attributes.
    let html = app.get("/admin").await.text().await.unwrap();
    assert!(
        html.contains("data-requests-platform="),
        "{}",
        &html[..300.min(html.len())]
    );

    let csv = app.get("/admin/export.csv?days=30").await;
    assert_eq!(csv.status(), StatusCode::OK);
    assert!(csv.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/csv"));
    let text = csv.text().await.unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].starts_with("id,time_utc,user_email"));
    assert_eq!(lines.len() as i64 - 1, sum("COUNT(*)").await);
    let csv_cost: i64 = lines[1..]
        .iter()
        .map(|line| {
            let usd = line.split(',').nth(9).unwrap();
            let (whole, micro) = usd.split_once('.').unwrap();
            whole.parse::<i64>().unwrap() * 1_000_000 + micro.parse::<i64>().unwrap()
        })
        .sum();
    assert_eq!(csv_cost, sum("SUM(cost_micro_usd)").await);
}

async fn live_calls_reach_the_dashboard_with_who_paid(db: TestDb) {
    let mock = mock_with_platform_key();
    let app = chat_app(db, &mock, &[]).await;
    send(&app, None, "hello").await;
    send(&app, None, "again").await;
    let html = app.get("/admin").await.text().await.unwrap();
    let row = html
        .split("<tr")
        .find(|r| r.contains(r#"data-email="ada@example.com""#))
        .expect("ada's row");
    assert!(row.contains(r#"data-requests-platform="2""#), "{row}");
    assert!(row.contains(r#"data-requests-user="0""#), "{row}");
    let cost: i64 =
        sqlx::query_scalar("SELECT CAST(SUM(cost_micro_usd) AS BIGINT) FROM usage_ledger")
            .fetch_one(&app.db)
            .await
            .unwrap();
    let expected = format!(
        r#"data-cost-usd="{}.{:06}""#,
        cost / 1_000_000,
        cost % 1_000_000
    );
    assert!(row.contains(&expected), "{row} / {expected}");
}

async fn disabling_ends_sessions_and_blocks_tokens_and_the_last_admin_stays(db: TestDb) {
    let mock = mock_with_platform_key();
    let app = chat_app(db, &mock, &[]).await; // ada, the first account, is admin
    let bob = app.new_client();
    app.call_with(
        &bob,
        "signup",
        &[("email", "bob@example.com"), ("password", PASSWORD)],
    )
    .await;
    let created: Value = app
        .call_with(&bob, "tokens/create", &[("name", "cli")])
        .await
        .json()
        .await
        .unwrap();
    let token = created["token"].as_str().unwrap().to_owned();
    let models = |token: String| {
        let url = app.url("/v1/models");
        async move {
            reqwest::Client::new()
                .get(url)
                .header("x-api-key", token)
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    assert_eq!(models(token.clone()).await, StatusCode::OK);

    let bob_id = "2";
    let disabled = app
        .call(
            "admin/set_disabled",
            &[("user_id", bob_id), ("disabled", "true")],
        )
        .await;
    assert_eq!(disabled.status(), StatusCode::OK);
    assert_redirect(&app.get_with(&bob, "/settings").await, "/login");
    assert_eq!(
        models(token.clone()).await,
        StatusCode::FORBIDDEN,
        "tokens blocked at once"
    );

    // The last admin can be neither demoted nor disabled; a second admin unlocks it.
    let demote = app
        .call("admin/set_role", &[("user_id", "1"), ("admin", "false")])
        .await;
    assert_eq!(demote.status(), StatusCode::BAD_REQUEST);
    assert!(demote.text().await.unwrap().contains("last enabled admin"));
    let self_disable = app
        .call(
            "admin/set_disabled",
            &[("user_id", "1"), ("disabled", "true")],
        )
        .await;
    assert_eq!(self_disable.status(), StatusCode::BAD_REQUEST);
    app.call(
        "admin/set_disabled",
        &[("user_id", bob_id), ("disabled", "false")],
    )
    .await;
    assert_eq!(
        app.call("admin/set_role", &[("user_id", bob_id), ("admin", "true")])
            .await
            .status(),
        200
    );
    assert_eq!(
        app.call("admin/set_role", &[("user_id", "1"), ("admin", "false")])
            .await
            .status(),
        200
    );

    app.login_with(&bob, "bob@example.com", PASSWORD).await;
    let audit: Value = app
        .call_with(&bob, "admin/audit", &[("action", "role_changed")])
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(audit["entries"].as_array().unwrap().len(), 2);
    let all: Value = app
        .call_with(&bob, "admin/audit", &[])
        .await
        .json()
        .await
        .unwrap();
    assert!(
        !all.to_string().contains(&token),
        "the audit log never holds a token"
    );
}

async fn a_new_plan_changes_the_users_limits(db: TestDb) {
    let mock = mock_with_platform_key();
    let app = chat_app(db, &mock, &[]).await;
    let saved = app
        .call(
            "admin/save_plan",
            &[
                ("name", "pro"),
                ("requests_per_minute", ""),
                ("requests_per_day", "500"),
                ("tokens_per_day", ""),
                ("models[]", "claude-haiku-4-5"),
                ("models[]", "claude-sonnet-4-6"),
                ("max_tokens", "4096"),
            ],
        )
        .await;
    assert_eq!(saved.status(), StatusCode::OK, "{:?}", saved.text().await);
    let plans: Value = app.call("admin/plans", &[]).await.json().await.unwrap();
    let pro = plans
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "pro")
        .unwrap()
        .clone();
    assert_eq!(pro["models"].as_array().unwrap().len(), 2);
    let bad = app
        .call(
            "admin/save_plan",
            &[
                ("name", "bad name"),
                ("requests_per_minute", ""),
                ("requests_per_day", ""),
                ("tokens_per_day", ""),
                ("max_tokens", "5"),
            ],
        )
        .await;
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);

    let set = app
        .call(
            "admin/set_plan",
            &[("user_id", "1"), ("plan_id", &pro["id"].to_string())],
        )
        .await;
    assert_eq!(set.status(), StatusCode::OK);
    let usage: Value = app.call("usage/mine", &[]).await.json().await.unwrap();
    assert_eq!(usage["plan"], "pro");
    assert_eq!(usage["requests_per_day"], 500);
    assert_eq!(usage["max_tokens"], 4096);
}

db_tests!(
    dashboard_numbers_equal_sums_over_the_ledger,
    live_calls_reach_the_dashboard_with_who_paid,
    disabling_ends_sessions_and_blocks_tokens_and_the_last_admin_stays,
    a_new_plan_changes_the_users_limits,
);
