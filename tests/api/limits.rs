//! Free-tier limits on the platform key: never overshot, also under
//! concurrency and across instances; windows reset on time.

use futures::future::join_all;
use serde_json::json;

use crate::{
    chat_helpers::{chat_app, mock_with_platform_key, send, send_with},
    db_tests,
    helpers::{spawn_app_on, TestDb, PASSWORD},
};

const DAY_MS: i64 = 24 * 60 * 60 * 1000;

async fn thirty_concurrent_calls_against_a_limit_of_five(db: TestDb) {
    let mock = mock_with_platform_key();
    let app = chat_app(
        db,
        &mock,
        &["--requests-per-day", "5", "--requests-per-minute", "100"],
    )
    .await;
    let calls = (0..30).map(|i| {
        let body = json!({ "conversation_id": null, "text": format!("question {i}"), "model": "claude-haiku-4-5" });
        send_with(&app, &app.client, body)
    });
    let turns = join_all(calls).await;
    let ok = turns.iter().filter(|t| t.status == 200).count();
    let refused: Vec<_> = turns.iter().filter(|t| t.status == 429).collect();
    assert_eq!((ok, refused.len()), (5, 25));
    assert!(refused[0].events[0].to_string().contains("5 free requests"));
    assert_eq!(
        mock.received_on("/v1/messages").await.len(),
        5,
        "exactly five upstream calls"
    );
    let ledger: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM usage_ledger")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(ledger, 5, "one ledger row per upstream call");
}

async fn two_instances_on_one_database_share_the_limit(db: TestDb) {
    let mock = mock_with_platform_key();
    let args = ["--requests-per-day", "5", "--requests-per-minute", "100"];
    let first = chat_app(db, &mock, &args).await;
    let mut second_args = vec![
        "--anthropic-base-url",
        mock.url.as_str(),
        "--anthropic-api-key",
        crate::chat_helpers::PLATFORM_KEY,
    ];
    second_args.extend_from_slice(&args);
    let second = spawn_app_on(&first.database_url, &second_args).await;
    // The same user, logged in on each instance (a browser tab on each).
    let second_tab = second.new_client();
    assert_eq!(
        second
            .login_with(&second_tab, "ada@example.com", PASSWORD)
            .await
            .status(),
        200
    );
    let calls = (0..30).map(|i| {
        let (app, tab) = if i % 2 == 0 { (&first, &first.client) } else { (&second, &second_tab) };
        let body = json!({ "conversation_id": null, "text": format!("q{i}"), "model": "claude-haiku-4-5" });
        send_with(app, tab, body)
    });
    let turns = join_all(calls).await;
    let ok = turns.iter().filter(|t| t.status == 200).count();
    let refused = turns.iter().filter(|t| t.status == 429).count();
    assert_eq!(
        (ok, refused),
        (5, 25),
        "answers: {:?}",
        turns
            .iter()
            .map(|t| (t.status, t.events.first().cloned()))
            .collect::<Vec<_>>()
    );
    assert_eq!(mock.received_on("/v1/messages").await.len(), 5);
}

async fn the_daily_limit_resets_at_midnight_utc(db: TestDb) {
    let mock = mock_with_platform_key();
    let app = chat_app(db, &mock, &["--requests-per-day", "1"]).await;
    assert_eq!(send(&app, None, "one").await.status, 200);
    let refused = send(&app, None, "two").await;
    assert_eq!(refused.status, 429);
    let message = refused.events[0].to_string();
    assert!(
        message.contains("1 free requests for today") && message.contains("00:00 UTC"),
        "{message}"
    );
    let retry = refused.events[0]["LimitReached"]["retry_after_secs"]
        .as_u64()
        .unwrap();
    assert!((1..=86_400).contains(&retry));

    app.clock.advance_ms(DAY_MS);
    assert_eq!(send(&app, None, "three, next day").await.status, 200);
    assert_eq!(mock.received_on("/v1/messages").await.len(), 2);
}

async fn the_minute_limit_is_a_rolling_window(db: TestDb) {
    let mock = mock_with_platform_key();
    let app = chat_app(db, &mock, &["--requests-per-minute", "2"]).await;
    assert_eq!(send(&app, None, "a").await.status, 200);
    app.clock.advance_ms(30_000);
    assert_eq!(send(&app, None, "b").await.status, 200);
    let refused = send(&app, None, "c").await;
    assert_eq!(refused.status, 429);
    assert!(refused.events[0]
        .to_string()
        .contains("2 requests per minute"));
    app.clock.advance_ms(31_000); // the first call left the window, the second did not
    assert_eq!(send(&app, None, "d").await.status, 200);
    assert_eq!(send(&app, None, "e").await.status, 429);
}

async fn max_tokens_is_clamped_and_the_token_budget_holds(db: TestDb) {
    let mock = mock_with_platform_key();
    let app = chat_app(db, &mock, &["--max-tokens", "12", "--tokens-per-day", "60"]).await;
    let first = send(&app, None, "hi").await;
    assert_eq!(first.status, 200);
    let sent = mock.received_on("/v1/messages").await;
    assert_eq!(sent[0]["max_tokens"], 12, "the clamped value went upstream");
    let finished = first.finished();
    assert_eq!(
        finished["output_tokens"], 12,
        "the mock stopped at max_tokens"
    );
    // Used so far: the real usage (settled), not the reservation.
    let used: i64 = sqlx::query_scalar("SELECT tokens FROM usage_daily")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(used, finished["input_tokens"].as_i64().unwrap() + 12);
    // Keep going until the budget says no; it never goes over.
    let mut refused = None;
    for i in 0..10 {
        let turn = send(&app, None, &format!("again {i}")).await;
        if turn.status == 429 {
            refused = Some(turn);
            break;
        }
    }
    let refused = refused.expect("the token budget ran out");
    assert!(refused.events[0].to_string().contains("60 tokens"));
    let used: i64 = sqlx::query_scalar("SELECT tokens FROM usage_daily")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert!(used <= 60, "never over budget: {used}");
}

async fn own_key_calls_are_not_limited(db: TestDb) {
    let mock = mock_with_platform_key();
    let app = chat_app(db, &mock, &["--requests-per-day", "1"]).await;
    assert_eq!(send(&app, None, "free").await.status, 200);
    assert_eq!(send(&app, None, "free again").await.status, 429);
    app.call("keys/save", &[("api_key", crate::mock::VALID_KEY)])
        .await;
    for i in 0..3 {
        let turn = send(&app, None, &format!("mine {i}")).await;
        assert_eq!(turn.status, 200);
        assert_eq!(turn.started()["paid_by"], "user");
    }
}

db_tests!(
    thirty_concurrent_calls_against_a_limit_of_five,
    two_instances_on_one_database_share_the_limit,
    the_daily_limit_resets_at_midnight_utc,
    the_minute_limit_is_a_rolling_window,
    max_tokens_is_clamped_and_the_token_budget_holds,
    own_key_calls_are_not_limited,
);
