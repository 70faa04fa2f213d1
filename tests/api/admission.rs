//! Admission in batches: the plan's limits hold exactly under a burst on
//! several instances, and the per-minute window ends where it should.

use futures::future::join_all;
use reqwest::StatusCode;

use crate::{
    books::balanced_books,
    chat_helpers::{chat_app, mock_with_platform_key, PLATFORM_KEY},
    db_tests,
    gateway::{body, create_token, post},
    helpers::{spawn_app, spawn_app_on, TestDb, PASSWORD},
};

async fn two_instances_sharing_a_limit_of_fifty_admit_exactly_fifty_of_two_hundred(db: TestDb) {
    let mock = mock_with_platform_key();
    let limits = ["--requests-per-day", "50", "--requests-per-minute", "1000"];
    let first = chat_app(db, &mock, &limits).await;
    let mut args = vec![
        "--anthropic-base-url",
        mock.url.as_str(),
        "--anthropic-api-key",
        PLATFORM_KEY,
    ];
    args.extend_from_slice(&limits);
    let second = spawn_app_on(&first.database_url, &args).await;
    let token = create_token(&first, "burst").await;
    let request = body("claude-haiku-4-5", 20, "hi");
    let calls = (0..200).map(|i| {
        let app = if i % 2 == 0 { &first } else { &second };
        post(app, &token, "/v1/messages", &request)
    });
    let statuses: Vec<u16> = join_all(calls)
        .await
        .iter()
        .map(|r| r.status().as_u16())
        .collect();
    let admitted = statuses.iter().filter(|s| **s == 200).count();
    let refused = statuses.iter().filter(|s| **s == 429).count();
    assert_eq!((admitted, refused), (50, 150), "{statuses:?}");
    assert_eq!(mock.received_on("/v1/messages").await.len(), 50);
    let books = balanced_books(&first.db).await;
    assert_eq!(books.requests, 50, "{books:?}");
}

async fn the_minute_window_ends_between_59_9_and_60_1_seconds(db: TestDb) {
    let mock = mock_with_platform_key();
    let app = chat_app(db, &mock, &["--requests-per-minute", "3"]).await;
    let token = create_token(&app, "edge").await;
    let request = body("claude-haiku-4-5", 20, "hi");
    let first_at = app.clock.now_ms();
    for _ in 0..3 {
        assert_eq!(
            post(&app, &token, "/v1/messages", &request).await.status(),
            200
        );
    }
    let last_at = app.clock.now_ms();
    let refused = post(&app, &token, "/v1/messages", &request).await;
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);

    // 59.9 s after the first call, all three are still in the window.
    app.clock.advance_ms(first_at + 59_900 - app.clock.now_ms());
    let refused = post(&app, &token, "/v1/messages", &request).await;
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(refused.headers().get("retry-after").is_some());

    // 60.1 s after the last one, none is.
    app.clock.advance_ms(last_at + 60_100 - app.clock.now_ms());
    assert_eq!(
        post(&app, &token, "/v1/messages", &request).await.status(),
        200
    );
    balanced_books(&app.db).await;
}

async fn a_batch_across_midnight_keeps_one_minute_window_per_user(db: TestDb) {
    use keyward::server::db::{
        reservations::Tag,
        reserve_many::{reserve_many, Ask},
        usage::Limits,
    };
    let app = spawn_app(db).await;
    app.signup("ada@example.com", PASSWORD).await;
    let user_id: i64 = sqlx::query_scalar("SELECT id FROM users")
        .fetch_one(&app.db)
        .await
        .unwrap();
    let midnight = 1_796_169_600_000; // 2026-12-02T00:00:00Z
    let limits = Limits {
        requests_per_minute: Some(2),
        requests_per_day: None,
        tokens_per_day: None,
    };
    let ask = |day: &str, now_ms: i64| Ask {
        user_id,
        day: day.to_owned(),
        now_ms,
        tokens: 10,
        limits,
    };
    // Three asks in one batch, a second either side of midnight: two fit
    // the minute, whatever their days.
    let asks = [
        ask("2026-12-01", midnight - 1_000),
        ask("2026-12-02", midnight + 1),
        ask("2026-12-02", midnight + 2),
    ];
    let tag = Tag {
        instance: "test",
        expires_at: i64::MAX,
    };
    let mut conn = app.db.acquire().await.unwrap();
    let answers = reserve_many(&mut conn, &asks, tag).await.unwrap();
    let admitted = answers.iter().filter(|answer| answer.is_ok()).count();
    assert_eq!(admitted, 2, "{answers:?}");
}

db_tests!(
    two_instances_sharing_a_limit_of_fifty_admit_exactly_fifty_of_two_hundred,
    the_minute_window_ends_between_59_9_and_60_1_seconds,
    a_batch_across_midnight_keeps_one_minute_window_per_user,
);
