//! The admin dashboard's server time at scale: `seed-demo` fills a fresh
//! database with N ledger rows (default 1,000,000) over a year, then the
//! dashboard (totals, per-day series, top models, latency percentiles) and
//! the first users page are loaded repeatedly, on SQLite and on Postgres
//! (when KEYWARD_BENCH_POSTGRES_URL or the local test server answers).

mod support;

use std::time::{Duration, Instant};

use keyward::{
    model::admin::PeriodQuery,
    server::{
        admin::{dashboard, period, seed},
        db::{self, Backend},
    },
};
use support::{ms, percentile};

const ROUNDS: usize = 15;

async fn measure(url: &str, rows: usize) {
    let backend = Backend::of_url(url);
    let pool = db::connect(url).await.expect("connect");
    db::migrate(&pool, backend).await.expect("migrate");
    let now = keyward::server::clock::Clock::default().now_ms();
    let started = Instant::now();
    let report = seed::seed_demo(&pool, backend, rows, now)
        .await
        .expect("seed");
    println!(
        "{backend:?}: seeded {} rows for {} users in {:.1} s",
        report.rows,
        report.users,
        started.elapsed().as_secs_f64()
    );
    for days in [7, 30] {
        let range = period::resolve(
            &PeriodQuery {
                days: Some(days),
                ..Default::default()
            },
            now,
        )
        .expect("period");
        let mut samples = Vec::with_capacity(ROUNDS);
        for _ in 0..ROUNDS {
            let start = Instant::now();
            let data = dashboard::load(&pool, &range).await.expect("dashboard");
            let users = dashboard::users_page(&pool, &range, "", "-cost", 1)
                .await
                .expect("users");
            assert!(data.totals.requests > 0 && !users.users.is_empty());
            samples.push(start.elapsed());
        }
        samples.sort();
        println!(
            "{backend:?}: dashboard + users page, last {days:>2} days: p50 {:>7.1} ms, max {:>7.1} ms ({ROUNDS} loads)",
            ms(percentile(&samples, 0.5)),
            ms(*samples.last().unwrap_or(&Duration::ZERO))
        );
    }
    pool.close().await;
}

#[tokio::main]
async fn main() {
    let rows: usize = std::env::var("KEYWARD_BENCH_ROWS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(1_000_000);
    let dir = std::env::temp_dir().join(format!("keyward-dashboard-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let sqlite = format!("sqlite:{}?mode=rwc", dir.join("bench.db").display());
    measure(&sqlite, rows).await;
    let _ = std::fs::remove_dir_all(&dir);

    let base = std::env::var("KEYWARD_BENCH_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let Ok(admin) = db::connect(&base).await else {
        println!("Postgres: not reachable at {base}; skipped");
        return;
    };
    let schema = format!("kw_bench_{}", std::process::id());
    sqlx::query(&format!("CREATE SCHEMA {schema}"))
        .execute(&admin)
        .await
        .expect("create schema");
    let sep = if base.contains('?') { '&' } else { '?' };
    measure(&format!("{base}{sep}options[search_path]={schema}"), rows).await;
    let _ = sqlx::query(&format!("DROP SCHEMA {schema} CASCADE"))
        .execute(&admin)
        .await;
}
