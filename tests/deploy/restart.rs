//! A rolling restart under load: each instance in turn gets SIGTERM (as
//! `systemctl restart keyward@…` sends it) and starts again, while callers
//! keep sending; no call fails and every call is in the ledger.

use std::time::Duration;

use crate::{
    load::{self, Load},
    stack::{Plan, Stack},
};

/// nginx's `fail_timeout` in the shipped site: an instance that refused a
/// connection is skipped that long, so a rolling restart waits that long
/// before it takes the other instance down (README, "Deploying").
const FAIL_TIMEOUT: Duration = Duration::from_secs(2);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_rolling_restart_under_load_fails_no_call_and_loses_no_ledger_row() {
    let mut stack = Stack::start("restart", Plan::ROOMY).await;
    let browser = stack.browser();
    stack.sign_up(&browser, "ada@example.com").await;
    let token = stack.token_for("ada@example.com");

    let load = Load::start(stack.api(), stack.url("/v1/messages"), token, 8);
    tokio::time::sleep(Duration::from_millis(500)).await;
    for index in 0..2 {
        let status = stack.instances[index].stop().await;
        assert!(
            status.success(),
            "{} exits 0 after SIGTERM: {status}",
            stack.instances[index].name
        );
        stack.instances[index].start().await;
        tokio::time::sleep(FAIL_TIMEOUT + Duration::from_millis(500)).await;
    }
    let outcomes = load.finish().await;
    load::report("rolling restart", &outcomes);

    let failed: Vec<_> = outcomes
        .iter()
        .filter(|outcome| outcome.status != 200)
        .collect();
    assert!(
        failed.is_empty(),
        "{} of {} calls failed, first: {:?}",
        failed.len(),
        outcomes.len(),
        failed.first()
    );
    assert!(
        outcomes.len() > 100,
        "the load kept going: {} calls",
        outcomes.len()
    );

    // Every answered call reached the upstream once and has its ledger row.
    assert_eq!(stack.mock.calls().await, outcomes.len(), "upstream calls");
    assert_eq!(
        stack
            .ledger_rows_reach("ada@example.com", outcomes.len())
            .await,
        outcomes.len(),
        "ledger rows"
    );
}
