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

/// keyward with one account signed up (ada), and her id.
async fn app_with_one_user(db: TestDb) -> (crate::helpers::TestApp, i64) {
    let app = spawn_app(db).await;
    app.signup("ada@example.com", PASSWORD).await;
    let user_id: i64 = sqlx::query_scalar("SELECT id FROM users")
        .fetch_one(&app.db)
        .await
        .unwrap();
    (app, user_id)
}

async fn a_batch_across_midnight_keeps_one_minute_window_per_user(db: TestDb) {
    use keyward::server::db::{
        reservations::Tag,
        reserve_many::{reserve_many, Ask},
        usage::Limits,
    };
    let (app, user_id) = app_with_one_user(db).await;
    let midnight = 1_796_169_600_000; // 2026-12-02T00:00:00Z
    let limits = Limits {
        requests_per_minute: Some(2),
        requests_per_day: None,
        tokens_per_day: None,
    };
    let ask = |day: &str, now_ms: i64| Ask::new(user_id, day.to_owned(), now_ms, 10, limits);
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
    let answers = reserve_many(&mut conn, &asks, &Default::default(), &[], tag)
        .await
        .unwrap()
        .answers;
    let admitted = answers.iter().filter(|answer| answer.is_ok()).count();
    assert_eq!(admitted, 2, "{answers:?}");
}

/// An instance that dies holding a lease: while the lease is open another
/// instance that runs short is told to ask again after its end (it is not
/// refused outright); once the dead instance's row has expired and been
/// swept, the other instance can use the whole remaining allowance, and
/// never more.
async fn a_lease_left_by_a_dead_instance_comes_back_after_its_expiry(db: TestDb) {
    use std::collections::HashMap;

    use keyward::server::db::{
        give_back::release_abandoned,
        reservations::Tag,
        reserve_many::{reserve_many, Ask, Headroom},
        usage::Limits,
    };
    let (app, user_id) = app_with_one_user(db).await;
    let limits = Limits {
        requests_per_minute: None,
        requests_per_day: Some(50),
        tokens_per_day: None,
    };
    let now = app.clock.now_ms();
    let asks = |calls: usize| -> Vec<Ask> {
        (0..calls)
            .map(|_| Ask::new(user_id, "2026-12-01".into(), now, 10, limits))
            .collect()
    };
    let dead = Tag {
        instance: "dead",
        expires_at: now - 1,
    };
    let headroom = HashMap::from([(
        user_id,
        Headroom {
            requests: 10,
            tokens: 100,
        },
    )]);
    let mut conn = app.db.acquire().await.unwrap();
    let leased = reserve_many(&mut conn, &asks(2), &headroom, &[], dead)
        .await
        .unwrap();
    assert!(leased.answers.iter().all(Result::is_ok));
    assert_eq!(
        leased.grants.len(),
        1,
        "2 + 2 × 10 fit in 50: a lease of 10"
    );
    assert_eq!(leased.grants[0].headroom.requests, 10);

    // 12 of 50 are counted for the dead instance: 38 fit, the 39th is
    // refused for now, with the lease's end to ask again after.
    let live = Tag {
        instance: "live",
        expires_at: now + 60_000,
    };
    let decided = reserve_many(&mut conn, &asks(39), &HashMap::new(), &[], live)
        .await
        .unwrap();
    let admitted = decided.answers.iter().filter(|a| a.is_ok()).count();
    assert_eq!(admitted, 38);
    let declined = decided.answers[38].as_ref().unwrap_err();
    assert_eq!(
        declined.others_open_until,
        Some(leased.grants[0].open_until)
    );

    // The dead instance's row expired: the sweep gives back its 12, the
    // last 12 of the allowance fit, and not one more.
    let released = release_abandoned(&app.db, now, None).await.unwrap();
    assert_eq!(released, 1);
    let decided = reserve_many(&mut conn, &asks(13), &HashMap::new(), &[], live)
        .await
        .unwrap();
    let admitted = decided.answers.iter().filter(|a| a.is_ok()).count();
    assert_eq!(admitted, 12);
    let declined = decided.answers[12].as_ref().unwrap_err();
    assert_eq!(
        declined.others_open_until, None,
        "no lease is open any more"
    );
    let counted: i64 = sqlx::query_scalar("SELECT requests FROM usage_daily")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(counted, 50);
}

/// A batch that committed though its answer was lost (the connection
/// dropped as it did): no caller heard of its rows, so the writer takes
/// them back whole once the database answers, lease included; rows of
/// calls that were admitted stay, and taking back twice changes nothing.
async fn a_batch_whose_answer_was_lost_is_taken_back_whole(db: TestDb) {
    use std::collections::HashMap;

    use keyward::server::db::{
        leases::{give_back_now, Owed},
        reservations::Tag,
        reserve_many::{reserve_many, rows_of, Ask, Headroom},
        usage::Limits,
    };
    let (app, user_id) = app_with_one_user(db).await;
    let limits = Limits {
        requests_per_minute: Some(1_000),
        requests_per_day: Some(100),
        tokens_per_day: None,
    };
    let now = app.clock.now_ms();
    let day = keyward::server::clock::utc_day(now);
    let asks = |calls: usize| -> Vec<Ask> {
        (0..calls)
            .map(|_| Ask::new(user_id, day.clone(), now, 10, limits))
            .collect()
    };
    let tag = Tag {
        instance: "here",
        expires_at: now + 60_000,
    };
    let counted = || async {
        sqlx::query_as::<_, (i64, i64, i64, i64)>(
            "SELECT (SELECT CAST(COALESCE(SUM(requests), 0) AS BIGINT) FROM usage_daily), \
                    (SELECT CAST(COALESCE(SUM(tokens), 0) AS BIGINT) FROM usage_daily), \
                    (SELECT CAST(COALESCE(SUM(calls), 0) AS BIGINT) FROM rate_buckets), \
                    (SELECT COUNT(*) FROM reservations)",
        )
        .fetch_one(&app.db)
        .await
        .unwrap()
    };
    let mut conn = app.db.acquire().await.unwrap();
    let answered = asks(2);
    reserve_many(&mut conn, &answered, &HashMap::new(), &[], tag)
        .await
        .unwrap();
    assert_eq!(
        counted().await,
        (2, 20, 2, 1),
        "two calls admitted, one row"
    );

    let lost = asks(3);
    let headroom = HashMap::from([(
        user_id,
        Headroom {
            requests: 5,
            tokens: 50,
        },
    )]);
    let decided = reserve_many(&mut conn, &lost, &headroom, &[], tag)
        .await
        .unwrap();
    assert_eq!(decided.grants.len(), 1, "a lease came with it");
    assert_eq!(counted().await, (10, 100, 10, 2));

    let owed = Owed {
        leases: Vec::new(),
        unanswered: rows_of(&lost),
    };
    give_back_now(&mut conn, &owed).await.unwrap();
    assert_eq!(
        counted().await,
        (2, 20, 2, 1),
        "the lost batch, lease and all"
    );
    give_back_now(&mut conn, &owed).await.unwrap();
    assert_eq!(counted().await, (2, 20, 2, 1), "taken back once");
    let never_written = Owed {
        leases: Vec::new(),
        unanswered: rows_of(&asks(4)),
    };
    give_back_now(&mut conn, &never_written).await.unwrap();
    assert_eq!(
        counted().await,
        (2, 20, 2, 1),
        "a batch that never committed"
    );
}

/// One busy user's burst on the gateway: calls after the first batches
/// are admitted from leases, and when the burst is over every lease is
/// closed and the books balance to the last token.
async fn a_busy_users_burst_is_admitted_from_leases_and_the_books_balance(db: TestDb) {
    let mock = mock_with_platform_key();
    let limits = [
        "--requests-per-day",
        "100000",
        "--requests-per-minute",
        "100000",
    ];
    let app = chat_app(db, &mock, &limits).await;
    let token = create_token(&app, "burst").await;
    let request = body("claude-haiku-4-5", 20, "hi");
    for _ in 0..10 {
        let calls = (0..16).map(|_| post(&app, &token, "/v1/messages", &request));
        for answer in join_all(calls).await {
            assert_eq!(answer.status(), 200);
        }
    }
    let books = balanced_books(&app.db).await;
    assert_eq!(books.requests, 160, "{books:?}");
    let text = app.get("/metrics").await.text().await.unwrap();
    let from_leases = metric(&text, "keyward_platform_calls_admitted_from_leases_total");
    assert!(from_leases > 0, "no call was admitted from a lease: {text}");
}

fn metric(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("{name} is listed: {text}"))
        .parse()
        .unwrap()
}

/// A user busy across many 100 ms edges gets each next lease ahead of the
/// edge, up to their day's limit and never past it: exactly the limit is
/// admitted, and the books balance. The limit is large beside a lease
/// (twice the calls of a 100 ms window, some hundred on a fast machine, and
/// taken only where twice that still fits), so the stream crosses many
/// edges before the last of the allowance is decided call by call.
async fn leases_taken_ahead_stop_exactly_at_the_limit(db: TestDb) {
    const LIMIT: i64 = 2_000;
    let mock = mock_with_platform_key();
    let limit = LIMIT.to_string();
    let limits = [
        "--requests-per-day",
        &limit,
        "--requests-per-minute",
        "100000",
    ];
    let app = chat_app(db, &mock, &limits).await;
    let token = create_token(&app, "busy").await;
    let request = body("claude-haiku-4-5", 20, "hi");
    // Sixteen callers, each calling again as soon as answered, until the
    // limit refuses them: a steady stream across many edges.
    let callers = (0..16).map(|_| async {
        let (mut admitted, mut refused) = (0, 0);
        while refused < 3 {
            match post(&app, &token, "/v1/messages", &request)
                .await
                .status()
                .as_u16()
            {
                200 => admitted += 1,
                429 => refused += 1,
                other => panic!("status {other}"),
            }
        }
        admitted
    });
    let admitted: i64 = join_all(callers).await.into_iter().sum();
    assert_eq!(admitted, LIMIT, "exactly the day's limit");
    let books = balanced_books(&app.db).await;
    assert_eq!(books.requests, LIMIT, "{books:?}");
    let text = app.get("/metrics").await.text().await.unwrap();
    assert!(
        metric(&text, "keyward_platform_leases_taken_ahead_total") > 0,
        "a steady stream of calls took leases ahead: {text}"
    );
}

db_tests!(
    a_lease_left_by_a_dead_instance_comes_back_after_its_expiry,
    a_batch_whose_answer_was_lost_is_taken_back_whole,
    a_busy_users_burst_is_admitted_from_leases_and_the_books_balance,
    leases_taken_ahead_stop_exactly_at_the_limit,
    two_instances_sharing_a_limit_of_fifty_admit_exactly_fifty_of_two_hundred,
    the_minute_window_ends_between_59_9_and_60_1_seconds,
    a_batch_across_midnight_keeps_one_minute_window_per_user,
);
