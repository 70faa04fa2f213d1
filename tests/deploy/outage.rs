//! PostgreSQL goes away for ten seconds under load: health turns 503,
//! calls and pages fail fast with a clear 503 (never a 500, never a hang),
//! and when it is back everything recovers without restarting keyward —
//! the same session still works and the books match the upstream's count.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::Value;

use crate::{
    load::{self, Load},
    stack::{Plan, Stack},
};

const OUTAGE: Duration = Duration::from_secs(10);
/// "Fast": a caller hears within this that the database is down.
const FAIL_FAST: Duration = Duration::from_secs(5);
/// Everything works again within this once the database is back.
const RECOVERY: Duration = Duration::from_secs(8);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_database_outage_fails_fast_and_everything_recovers_without_a_restart() {
    let mut stack = Stack::start("outage", Plan::ROOMY).await;
    let browser = stack.browser();
    stack.sign_up(&browser, "ada@example.com").await;
    let token = stack.token_for("ada@example.com");
    let settings = browser.get(stack.url("/settings")).send().await.unwrap();
    assert_eq!(
        settings.status(),
        StatusCode::OK,
        "signed in before the outage"
    );

    let load = Load::start(stack.api(), stack.url("/v1/messages"), token.clone(), 4);
    tokio::time::sleep(Duration::from_millis(500)).await;
    stack.gate.close().await;
    let began = Instant::now();

    let health = |index: usize| {
        let url = stack.instances[index].direct("/healthz");
        async move {
            let answer = reqwest::get(url).await.unwrap();
            (answer.status(), answer.json::<Value>().await.unwrap())
        }
    };
    let page = async {
        let asked = Instant::now();
        let page = browser.get(stack.url("/settings")).send().await.unwrap();
        (page, asked.elapsed())
    };
    let (first, second, (page, took)) = tokio::join!(health(0), health(1), page);
    for (status, health) in [first, second] {
        assert_eq!(
            status,
            StatusCode::SERVICE_UNAVAILABLE,
            "/healthz: {health}"
        );
        assert_eq!(health["database"], "unreachable");
    }
    assert_eq!(page.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(took < FAIL_FAST, "the page answered after {took:?}");
    let html = page.text().await.unwrap();
    assert!(
        html.contains("briefly unavailable") && html.contains("still signed in"),
        "{html}"
    );

    tokio::time::sleep(OUTAGE.saturating_sub(began.elapsed())).await;
    stack.gate.reopen().await;
    let reopened = began.elapsed();
    for instance in &mut stack.instances {
        instance.wait_until_healthy(Duration::from_secs(10)).await;
    }
    // Calls succeed again within a few seconds (each instance's books
    // writer asks the database again at most a second after its last try).
    let mut probes = Vec::new();
    let back = loop {
        let probe = load::call(&stack.api(), &stack.url("/v1/messages"), &token, began).await;
        let succeeded = probe.status == 200;
        probes.push(probe);
        if succeeded {
            break began.elapsed();
        }
        assert!(
            began.elapsed() < reopened + RECOVERY,
            "calls still fail {RECOVERY:?} after the database is back"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    println!(
        "deploy-test database outage: calls succeed again {:?} after the database is back",
        back - reopened
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut outcomes = load.finish().await;
    outcomes.extend(probes);
    load::report("database outage", &outcomes);

    for outcome in &outcomes {
        match outcome.status {
            200 => {}
            503 => {
                assert!(
                    outcome.latency < FAIL_FAST,
                    "a 503 after {:?}",
                    outcome.latency
                );
                let body: Value = serde_json::from_str(&outcome.body).unwrap();
                assert_eq!(body["type"], "error");
                assert_eq!(body["error"]["type"], "api_error");
                assert!(body["error"]["message"]
                    .as_str()
                    .unwrap()
                    .contains("database"));
            }
            _ => panic!("neither a success nor a clear 503: {outcome:?}"),
        }
    }
    let refused = outcomes
        .iter()
        .filter(|outcome| outcome.status == 503)
        .count();
    assert!(refused > 0, "the load met the outage");
    let recovered = outcomes
        .iter()
        .filter(|outcome| outcome.status == 200 && outcome.started > reopened)
        .count();
    assert!(
        recovered > 0,
        "calls succeed again once the database is back"
    );

    let page = browser.get(stack.url("/settings")).send().await.unwrap();
    assert_eq!(
        page.status(),
        StatusCode::OK,
        "the session outlived the outage"
    );

    // The books: every call that reached the upstream has its ledger row
    // (rows of calls that ended during the outage were kept and written
    // after it), the daily counter agrees, and no hold is left.
    let succeeded = outcomes
        .iter()
        .filter(|outcome| outcome.status == 200)
        .count();
    assert_eq!(stack.mock.calls().await, succeeded, "upstream calls");
    assert_eq!(
        stack.ledger_rows_reach("ada@example.com", succeeded).await,
        succeeded,
        "ledger rows"
    );
    let mut counted = 0.0;
    for instance in &stack.instances {
        counted += instance.metric("keyward_upstream_requests_total{").await;
    }
    assert_eq!(
        counted as usize, succeeded,
        "keyward_upstream_requests_total"
    );
    let db = stack.owner_db().await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (requests, holds): (i64, i64) = sqlx::query_as(
            "SELECT (SELECT COALESCE(SUM(requests), 0)::BIGINT FROM usage_daily), \
                    (SELECT COUNT(*) FROM reservations)",
        )
        .fetch_one(&db)
        .await
        .unwrap();
        if requests as usize == succeeded && holds == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "daily requests {requests} (ledger {succeeded}), holds left {holds}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
