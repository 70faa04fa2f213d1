//! Signup, login, throttling, sessions and logout over HTTP.

use reqwest::{header, StatusCode};

use crate::{
    db_tests,
    helpers::{assert_redirect, spawn_app, spawn_app_with, TestDb, PASSWORD},
};

async fn signup_logs_in_and_opens_chat(db: TestDb) {
    let app = spawn_app(db).await;
    let response = app.signup("Ada@Example.com", PASSWORD).await;
    assert_eq!(response.status(), StatusCode::OK);
    let user: serde_json::Value = response.json().await.unwrap();
    assert_eq!(user["email"], "Ada@Example.com");

    let chat = app.get("/chat").await;
    assert_eq!(chat.status(), StatusCode::OK);
    let html = chat.text().await.unwrap();
    assert!(
        html.contains("Log out"),
        "logged-in page shows the Log out button"
    );
    assert!(html.contains("Ada@Example.com"));
}

async fn first_account_is_admin_and_second_is_not(db: TestDb) {
    let app = spawn_app(db).await;
    let first: serde_json::Value = app
        .signup("first@example.com", PASSWORD)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(first["is_admin"], true);
    let other = app.new_client();
    let second = app
        .call_with(
            &other,
            "signup",
            &[("email", "second@example.com"), ("password", PASSWORD)],
        )
        .await;
    let second: serde_json::Value = second.json().await.unwrap();
    assert_eq!(second["is_admin"], false);
}

async fn duplicate_email_is_refused_case_insensitively(db: TestDb) {
    let app = spawn_app(db).await;
    assert_eq!(
        app.signup("dup@example.com", PASSWORD).await.status(),
        StatusCode::OK
    );
    let again = app
        .call_with(
            &app.new_client(),
            "signup",
            &[("email", "DUP@example.com"), ("password", PASSWORD)],
        )
        .await;
    assert_eq!(again.status(), StatusCode::BAD_REQUEST);
    let body = again.text().await.unwrap();
    assert!(body.contains("cannot be used to sign up"), "{body}");
}

async fn weak_passwords_and_bad_emails_get_clear_errors(db: TestDb) {
    let app = spawn_app(db).await;
    let cases = [
        ("short@example.com", "short", "at least 8 characters"),
        (
            "long@example.com",
            &"x".repeat(129) as &str,
            "at most 128 characters",
        ),
        ("common@example.com", "password123", "too common"),
        ("not-an-email", PASSWORD, "valid email address"),
    ];
    for (email, password, expected) in cases {
        let response = app.signup(email, password).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{email}");
        let body = response.text().await.unwrap();
        assert!(body.contains(expected), "{email}: {body}");
    }
    // Nothing was created: the first real signup still becomes admin.
    let first: serde_json::Value = app
        .signup("real@example.com", PASSWORD)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(first["is_admin"], true);
}

async fn closed_signup_says_so_and_refuses_posts(db: TestDb) {
    let app = spawn_app_with(db, &["--allow-signup", "false"]).await;
    let page = app.get("/signup").await;
    assert_eq!(page.status(), StatusCode::OK);
    assert!(page.text().await.unwrap().contains("Signup is closed"));
    let response = app.signup("late@example.com", PASSWORD).await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
}

async fn login_works_and_rotates_the_session_id(db: TestDb) {
    let app = spawn_app(db).await;
    app.signup("ada@example.com", PASSWORD).await;
    let first_cookie = session_cookie(&app.login("ada@example.com", PASSWORD).await);
    let second = app.login("ADA@example.com", PASSWORD).await;
    assert_eq!(second.status(), StatusCode::OK);
    let second_cookie = session_cookie(&second);
    assert_ne!(
        first_cookie, second_cookie,
        "a new session id on every login"
    );
    assert_eq!(app.get("/settings").await.status(), StatusCode::OK);
}

async fn wrong_password_and_unknown_email_look_the_same(db: TestDb) {
    let app = spawn_app(db).await;
    app.signup("ada@example.com", PASSWORD).await;
    let client = app.new_client();
    let wrong = app
        .login_with(&client, "ada@example.com", "not the password")
        .await;
    let (wrong_status, wrong_body) = (wrong.status(), wrong.text().await.unwrap());
    let unknown = app
        .login_with(&client, "nobody@example.com", "not the password")
        .await;
    let (unknown_status, unknown_body) = (unknown.status(), unknown.text().await.unwrap());
    assert_eq!(wrong_status, StatusCode::UNAUTHORIZED);
    assert_eq!(wrong_status, unknown_status);
    assert_eq!(wrong_body, unknown_body);
    assert_eq!(
        app.get_with(&client, "/chat").await.status(),
        StatusCode::SEE_OTHER
    );
}

async fn failed_logins_are_throttled_with_a_retry_time(db: TestDb) {
    let app = spawn_app(db).await;
    app.signup("ada@example.com", PASSWORD).await;
    let attacker = app.new_client();
    for _ in 0..10 {
        let response = app
            .login_with(&attacker, "ada@example.com", "guess guess")
            .await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    }
    // Even the right password is refused while throttled, with a clear retry time.
    let blocked = app.login_with(&attacker, "ada@example.com", PASSWORD).await;
    assert_eq!(blocked.status(), StatusCode::TOO_MANY_REQUESTS);
    let body = blocked.text().await.unwrap();
    assert!(body.contains("retry_after_secs"), "{body}");
    let retry: serde_json::Value = serde_json::from_str(&body).unwrap();
    let secs = retry["TooManyAttempts"]["retry_after_secs"]
        .as_u64()
        .unwrap();
    assert!(
        (1..=900).contains(&secs),
        "retry within the 15 minute window, got {secs}"
    );
}

/// Thirty wrong passwords for one account sent at once: the throttle holds
/// as it does for attempts one by one (ten are checked, the rest refused).
async fn a_burst_of_wrong_passwords_is_throttled_like_a_sequence(db: TestDb) {
    let app = spawn_app(db).await;
    app.signup("ada@example.com", PASSWORD).await;
    let attacker = app.new_client();
    let attempts = (0..30).map(|i| {
        let attacker = attacker.clone();
        let app = &app;
        async move {
            app.login_with(&attacker, "ada@example.com", &format!("guess number {i}"))
                .await
                .status()
        }
    });
    let statuses = futures::future::join_all(attempts).await;
    let checked = statuses
        .iter()
        .filter(|s| **s == StatusCode::UNAUTHORIZED)
        .count();
    let throttled = statuses
        .iter()
        .filter(|s| **s == StatusCode::TOO_MANY_REQUESTS)
        .count();
    assert_eq!((checked, throttled), (10, 20), "{statuses:?}");
    let blocked = app.login_with(&attacker, "ada@example.com", PASSWORD).await;
    assert_eq!(blocked.status(), StatusCode::TOO_MANY_REQUESTS);
}

/// A huge email is refused by size (413), a long or malformed one as
/// invalid (400); neither reaches the audit log or the throttle's table,
/// so a password typed into the email box is not stored.
async fn oversized_or_malformed_login_emails_are_refused_and_never_stored(db: TestDb) {
    let app = spawn_app(db).await;
    app.signup("ada@example.com", PASSWORD).await;
    // A 4 MiB login is refused on its Content-Length alone, before any of
    // the body is read (sent raw: a client writing the body would race the
    // server closing the connection).
    let status = status_for_head_only(
        &app.base,
        "POST /api/login HTTP/1.1\r\nContent-Type: application/x-www-form-urlencoded\r\n\
         Content-Length: 4194304\r\n",
    )
    .await;
    assert_eq!(status, 413);
    let long = format!("{}@example.com", "a".repeat(1000));
    for email in [long.as_str(), "correct horse battery staple", "hunter2"] {
        let response = app.login(email, PASSWORD).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{email}");
        let body = response.text().await.unwrap();
        assert!(body.contains("valid email"), "{body}");
    }
    let stored: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM audit_log \
         WHERE detail LIKE '%horse%' OR detail LIKE '%hunter%' OR length(detail) > 300",
    )
    .fetch_one(&app.db)
    .await
    .unwrap();
    assert_eq!(stored, 0);
    let failures: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM login_failures")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(failures, 0);
    assert_eq!(app.get("/healthz").await.status(), StatusCode::OK);
}

/// Sends a request head (with `Host` and `Origin` added) and no body; the
/// status of the answer.
async fn status_for_head_only(base: &str, head: &str) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let address = base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    let request = format!("{head}Host: {address}\r\nOrigin: {base}\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = vec![0; 64];
    let read = stream.read(&mut answer).await.unwrap();
    let line = String::from_utf8_lossy(&answer[..read]).into_owned();
    line.split_whitespace()
        .nth(1)
        .and_then(|status| status.parse().ok())
        .unwrap_or_else(|| panic!("no status line: {line:?}"))
}

/// Ten failed logins for different emails from one client; the next try
/// from `next_ip` (as `X-Forwarded-For`) says whether that client is blocked.
async fn throttled_after_ten_from(extra_args: &[&str], db: TestDb, next_ip: &str) -> StatusCode {
    let app = spawn_app_with(db, extra_args).await;
    let from = |ip: &str| {
        let mut headers = header::HeaderMap::new();
        headers.insert(header::ORIGIN, app.base.parse().unwrap());
        headers.insert("x-forwarded-for", ip.parse().unwrap());
        reqwest::Client::builder()
            .default_headers(headers)
            .build()
            .unwrap()
    };
    let attacker = from("203.0.113.7");
    for n in 0..10 {
        let response = app
            .login_with(&attacker, &format!("nobody{n}@example.com"), "guess guess")
            .await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    }
    app.login_with(&from(next_ip), "someone@example.com", "guess guess")
        .await
        .status()
}

async fn behind_a_trusted_proxy_each_forwarded_client_is_throttled_alone(db: TestDb) {
    let args = ["--trusted-proxies", "10.9.9.9,127.0.0.1"];
    let same = throttled_after_ten_from(&args, db.clone(), "203.0.113.7").await;
    assert_eq!(
        same,
        StatusCode::TOO_MANY_REQUESTS,
        "the attacker is blocked"
    );
    let other = throttled_after_ten_from(&args, db, "203.0.113.8").await;
    assert_eq!(
        other,
        StatusCode::UNAUTHORIZED,
        "another client behind the proxy is not"
    );
}

async fn a_forwarded_address_from_an_untrusted_peer_is_ignored(db: TestDb) {
    // Without a trusted proxy the header is the client's word: changing it
    // does not escape the throttle.
    let status = throttled_after_ten_from(&[], db, "203.0.113.8").await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
}

async fn successful_login_resets_the_account_counter(db: TestDb) {
    let app = spawn_app(db).await;
    app.signup("ada@example.com", PASSWORD).await;
    let client = app.new_client();
    for _ in 0..9 {
        app.login_with(&client, "ada@example.com", "guess guess")
            .await;
    }
    assert_eq!(
        app.login_with(&client, "ada@example.com", PASSWORD)
            .await
            .status(),
        StatusCode::OK
    );
    // The counter restarted, so one more failure is a plain failure, not a block.
    let after = app
        .login_with(&app.new_client(), "ada@example.com", "guess guess")
        .await;
    assert_eq!(after.status(), StatusCode::UNAUTHORIZED);
}

async fn logout_ends_every_session_of_the_user(db: TestDb) {
    let app = spawn_app(db).await;
    app.signup("ada@example.com", PASSWORD).await;
    let laptop = app.new_client();
    app.login_with(&laptop, "ada@example.com", PASSWORD).await;
    assert_eq!(
        app.get_with(&laptop, "/chat").await.status(),
        StatusCode::OK
    );

    let response = app.logout_with(&app.client).await;
    assert_redirect(&response, "/login");
    assert_eq!(app.get("/chat").await.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        app.get_with(&laptop, "/chat").await.status(),
        StatusCode::SEE_OTHER,
        "other sessions end too"
    );
}

async fn disabled_account_loses_its_sessions_and_cannot_log_in(db: TestDb) {
    let app = spawn_app(db).await;
    app.signup("admin@example.com", PASSWORD).await;
    let user = app.new_client();
    let body: serde_json::Value = app
        .call_with(
            &user,
            "signup",
            &[("email", "bob@example.com"), ("password", PASSWORD)],
        )
        .await
        .json()
        .await
        .unwrap();
    let bob_id = body["id"].as_i64().unwrap();
    assert_eq!(app.get_with(&user, "/chat").await.status(), StatusCode::OK);

    keyward::server::auth::set_user_disabled(&app.db, bob_id, true, app.clock.now_ms())
        .await
        .unwrap();
    assert_eq!(
        app.get_with(&user, "/chat").await.status(),
        StatusCode::SEE_OTHER
    );
    let login = app.login_with(&user, "bob@example.com", PASSWORD).await;
    assert_eq!(login.status(), StatusCode::FORBIDDEN);
    assert!(login.text().await.unwrap().contains("AccountDisabled"));
}

async fn session_cookie_has_safe_flags(db: TestDb) {
    let app = spawn_app(db).await;
    let response = app.signup("ada@example.com", PASSWORD).await;
    let cookie = response.headers()[header::SET_COOKIE]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(cookie.starts_with("keyward_session="), "{cookie}");
    assert!(cookie.contains("HttpOnly"), "{cookie}");
    assert!(cookie.contains("SameSite=Lax"), "{cookie}");
    assert!(cookie.contains("Path=/"), "{cookie}");
    assert!(
        !cookie.contains("Secure"),
        "no Secure flag over plain http by default: {cookie}"
    );
    let value = cookie
        .split(';')
        .next()
        .unwrap()
        .trim_start_matches("keyward_session=");
    assert!(
        value.len() >= 22,
        "session id carries at least 128 bits: {value}"
    );

    let secure = spawn_app_with(TestDb::Sqlite, &["--secure-cookies", "true"]).await;
    let response = secure.signup("ada@example.com", PASSWORD).await;
    let cookie = response.headers()[header::SET_COOKIE].to_str().unwrap();
    assert!(cookie.contains("Secure"), "{cookie}");
}

async fn logged_in_users_skip_the_login_page(db: TestDb) {
    let app = spawn_app(db).await;
    assert_eq!(app.get("/login").await.status(), StatusCode::OK);
    app.signup("ada@example.com", PASSWORD).await;
    assert_redirect(&app.get("/login").await, "/chat");
}

fn session_cookie(response: &reqwest::Response) -> String {
    response
        .headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with("keyward_session="))
        .map(|c| c.split(';').next().unwrap().to_owned())
        .expect("a session cookie")
}

/// keyward dates what it records by its one clock: moved a year on, a
/// new account, its audit entry, its token and its session's login time
/// are a year on too (the session is then still young enough to use).
async fn what_keyward_records_is_dated_by_its_clock(db: TestDb) {
    const YEAR_MS: i64 = 365 * 24 * 60 * 60 * 1000;
    let app = spawn_app(db).await;
    app.clock.advance_ms(YEAR_MS);
    let before = app.clock.now_ms();
    assert_eq!(
        app.signup("ada@example.com", PASSWORD).await.status(),
        StatusCode::OK
    );
    crate::gateway::create_token(&app, "dated").await;
    let after = app.clock.now_ms();
    let (created, audited, issued): (i64, i64, i64) = sqlx::query_as(
        "SELECT (SELECT created_at FROM users), \
                (SELECT at FROM audit_log WHERE action = 'signup'), \
                (SELECT created_at FROM api_tokens)",
    )
    .fetch_one(&app.db)
    .await
    .unwrap();
    for at in [created, audited, issued] {
        assert!(
            (before..=after).contains(&at),
            "{at} not in {before}..={after}"
        );
    }
    assert_eq!(app.get("/settings").await.status(), StatusCode::OK);
}

db_tests!(
    what_keyward_records_is_dated_by_its_clock,
    oversized_or_malformed_login_emails_are_refused_and_never_stored,
    a_burst_of_wrong_passwords_is_throttled_like_a_sequence,
    signup_logs_in_and_opens_chat,
    first_account_is_admin_and_second_is_not,
    duplicate_email_is_refused_case_insensitively,
    weak_passwords_and_bad_emails_get_clear_errors,
    closed_signup_says_so_and_refuses_posts,
    login_works_and_rotates_the_session_id,
    wrong_password_and_unknown_email_look_the_same,
    failed_logins_are_throttled_with_a_retry_time,
    successful_login_resets_the_account_counter,
    behind_a_trusted_proxy_each_forwarded_client_is_throttled_alone,
    a_forwarded_address_from_an_untrusted_peer_is_ignored,
    logout_ends_every_session_of_the_user,
    disabled_account_loses_its_sessions_and_cannot_log_in,
    session_cookie_has_safe_flags,
    logged_in_users_skip_the_login_page,
);
