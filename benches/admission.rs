//! The free tier's cost: calls on the platform key — admitted against the
//! plan's limits, reserved, settled and written to the ledger — next to
//! the same calls on a premium user's own key and straight to the mock, in
//! one run, on SQLite and (when `KEYWARD_BENCH_POSTGRES_URL` or the local
//! PostgreSQL answers) on PostgreSQL.
//!
//! Rows: the per-minute limit set (10⁹, so every call reads and writes the
//! window) and unset, one busy user and 16 users, JSON and SSE, all at
//! concurrency 16. Every process shares every core. Arguments pick rows:
//! `-- sqlite json 1user rpm`.

mod support;

use std::io::Write;

use serde_json::{json, Value};
use support::{
    keyward::{start_keyward, Account, Keyward, Start, USER_KEY},
    load::{load, load_client, Outcome, Sample, Target, RUN, WARMUP},
    ms, start_mock, Selection,
};

const CONCURRENCY: usize = 16;
const ROUNDS: usize = 2;
const LOCAL_POSTGRES: &str = "postgres://postgres@127.0.0.1:5432/test";
/// High enough that no limit refuses a call during the bench.
const LIFTED: &str = "1000000000";

struct Bench {
    client: reqwest::Client,
    mock_pid: u32,
    mock_url: String,
    direct: Target,
    selection: Selection,
}

/// One keyward with its callers: a premium user and 16 free users.
struct Setup {
    keyward: Keyward,
    admin: Account,
    own_key: Target,
    free_users: Vec<String>,
}

async fn set_up(bench: &Bench, database_url: Option<String>) -> Setup {
    let start = Start {
        database_url,
        env: [
            "KEYWARD_FREE_REQUESTS_PER_DAY",
            "KEYWARD_FREE_TOKENS_PER_DAY",
            "KEYWARD_FREE_REQUESTS_PER_MINUTE",
        ]
        .map(|name| (name, LIFTED.to_owned()))
        .to_vec(),
        ..Start::default()
    };
    let keyward = start_keyward(&bench.mock_url, start).await;
    let admin = Account::sign_up(&keyward.base, "premium@example.com").await;
    admin.save_own_key().await;
    let own_key = Target {
        url: keyward.base.clone(),
        keys: vec![admin.token().await],
    };
    let mut free_users = Vec::new();
    for i in 0..CONCURRENCY {
        let user = Account::sign_up(&keyward.base, &format!("free{i}@example.com")).await;
        free_users.push(user.token().await);
    }
    Setup {
        keyward,
        admin,
        own_key,
        free_users,
    }
}

/// Sets the free plan's per-minute limit (`""` for none) as an admin would.
async fn set_minute_limit(admin: &Account, limit: &str) {
    let plans = admin.call("admin/plans", &[]).await;
    let free = plans
        .as_array()
        .and_then(|plans| plans.iter().find(|p| p["name"] == "free"))
        .expect("the free plan");
    let id = free["id"].as_i64().expect("plan id").to_string();
    admin
        .call(
            "admin/save_plan",
            &[
                ("id", id.as_str()),
                ("name", "free"),
                ("requests_per_minute", limit),
                ("requests_per_day", LIFTED),
                ("tokens_per_day", LIFTED),
                ("models[]", "claude-haiku-4-5"),
                ("max_tokens", "1024"),
            ],
        )
        .await;
}

struct Row {
    database: &'static str,
    minute_limit: &'static str,
    mode: &'static str,
    users: usize,
    /// Direct, own key, platform key.
    outcomes: [Outcome; 3],
}

async fn run_rows(bench: &Bench, database: &'static str, setup: &Setup) -> Vec<Row> {
    let pids = [
        "self".to_owned(),
        bench.mock_pid.to_string(),
        setup.keyward.child.id().to_string(),
    ];
    let mut rows = Vec::new();
    for (minute_limit, limit) in [("rpm", LIFTED), ("no-rpm", "")] {
        if !bench.selection.picks(&["rpm", "no-rpm"], minute_limit) {
            continue;
        }
        set_minute_limit(&setup.admin, limit).await;
        for (mode, stream) in [("json", false), ("sse", true)] {
            let body: Value = json!({
                "model": "claude-haiku-4-5", "max_tokens": 256, "stream": stream,
                "messages": [{ "role": "user", "content": "Hello there, how are you today?" }],
            });
            for users in [1, CONCURRENCY] {
                let label = if users == 1 { "1user" } else { "16users" };
                if !bench.selection.picks(&["json", "sse"], mode)
                    || !bench.selection.picks(&["1user", "16users"], label)
                {
                    continue;
                }
                let platform = Target {
                    url: setup.keyward.base.clone(),
                    keys: setup.free_users[..users].to_vec(),
                };
                let targets = [&bench.direct, &setup.own_key, &platform];
                let mut pooled = [Sample::default(), Sample::default(), Sample::default()];
                for _ in 0..ROUNDS {
                    for (i, target) in targets.iter().enumerate() {
                        let sample = load(&bench.client, target, &body, CONCURRENCY, &pids).await;
                        pooled[i].absorb(sample);
                    }
                }
                let row = Row {
                    database,
                    minute_limit,
                    mode,
                    users,
                    outcomes: pooled.map(Outcome::from),
                };
                print_row(&row);
                rows.push(row);
            }
        }
    }
    rows
}

fn print_row(row: &Row) {
    for (path, outcome) in ["direct", "own key", "platform"].iter().zip(&row.outcomes) {
        println!(
            "{:<8} {:<6} {:<4} {:>2} users  {path:<8} {:>8.0} rps  p50 {:>7.3} ms  p99 {:>7.3} ms  keyward {:>6.1} µs/call  errors {}",
            row.database,
            row.minute_limit,
            row.mode,
            row.users,
            outcome.rps,
            ms(outcome.p50),
            ms(outcome.p99),
            outcome.cpu_us[2],
            outcome.errors
        );
    }
    let _ = std::io::stdout().flush();
}

/// A fresh schema on the Postgres to bench against, if one answers.
async fn postgres_schema() -> Option<(String, String)> {
    let base =
        std::env::var("KEYWARD_BENCH_POSTGRES_URL").unwrap_or_else(|_| LOCAL_POSTGRES.into());
    let admin = keyward::server::db::connect(&base).await.ok()?;
    let schema = format!("kw_bench_{}", std::process::id());
    sqlx::query(&format!("CREATE SCHEMA {schema}"))
        .execute(&admin)
        .await
        .ok()?;
    admin.close().await;
    let sep = if base.contains('?') { '&' } else { '?' };
    Some((format!("{base}{sep}options[search_path]={schema}"), schema))
}

async fn drop_schema(schema: &str) {
    let base =
        std::env::var("KEYWARD_BENCH_POSTGRES_URL").unwrap_or_else(|_| LOCAL_POSTGRES.into());
    if let Ok(admin) = keyward::server::db::connect(&base).await {
        let _ = sqlx::query(&format!("DROP SCHEMA {schema} CASCADE"))
            .execute(&admin)
            .await;
        admin.close().await;
    }
}

#[tokio::main]
async fn main() {
    let (mut mock, mock_url) = start_mock(&[support::keyward::PLATFORM_KEY, USER_KEY]);
    let bench = Bench {
        client: load_client(),
        mock_pid: mock.id(),
        direct: Target {
            url: mock_url.clone(),
            keys: vec![USER_KEY.into()],
        },
        mock_url,
        selection: Selection::from_args(),
    };
    println!(
        "free tier vs own key: c={CONCURRENCY}, {ROUNDS} alternating rounds of {} s per path after {} ms warm-up; mock upstream with no delay; keyward release build; all processes share every core",
        RUN.as_secs(),
        WARMUP.as_millis()
    );
    let mut rows = Vec::new();
    if bench.selection.picks(&["sqlite", "postgres"], "sqlite") {
        let setup = set_up(&bench, None).await;
        rows.extend(run_rows(&bench, "sqlite", &setup).await);
    }
    if bench.selection.picks(&["sqlite", "postgres"], "postgres") {
        match postgres_schema().await {
            Some((url, schema)) => {
                let setup = set_up(&bench, Some(url)).await;
                rows.extend(run_rows(&bench, "postgres", &setup).await);
                drop(setup);
                drop_schema(&schema).await;
            }
            None => println!("postgres: skipped (no PostgreSQL answers)"),
        }
    }
    println!();
    for row in &rows {
        let [_, own, platform] = &row.outcomes;
        println!(
            "{:<8} {:<6} {:<4} {:>2} users: platform {:>5.1} % of own key's calls/s, p99 added {:>6.3} ms, keyward CPU {:>5.1} vs {:>5.1} µs/call",
            row.database,
            row.minute_limit,
            row.mode,
            row.users,
            platform.rps / own.rps * 100.0,
            ms(platform.p99) - ms(own.p99),
            platform.cpu_us[2],
            own.cpu_us[2],
        );
    }
    let _ = mock.kill();
    let _ = mock.wait();
}
