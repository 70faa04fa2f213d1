//! Access control for the admin page and admin server functions.

use reqwest::StatusCode;

use crate::{
    db_tests,
    helpers::{assert_redirect, spawn_app, TestDb, PASSWORD},
};

async fn anonymous_visitors_are_sent_to_login(db: TestDb) {
    let app = spawn_app(db).await;
    for page in ["/admin", "/chat", "/chat/1", "/settings"] {
        assert_redirect(&app.get(page).await, "/login");
    }
    let call = app.call("admin/users", &[]).await;
    assert_eq!(call.status(), StatusCode::UNAUTHORIZED);
}

async fn non_admin_gets_403_from_page_and_server_functions(db: TestDb) {
    let app = spawn_app(db).await;
    app.signup("admin@example.com", PASSWORD).await;
    let user = app.new_client();
    app.call_with(
        &user,
        "signup",
        &[("email", "user@example.com"), ("password", PASSWORD)],
    )
    .await;

    let page = app.get_with(&user, "/admin").await;
    assert_eq!(page.status(), StatusCode::FORBIDDEN);
    let html = page.text().await.unwrap();
    assert!(html.contains("You do not have access to this page"));
    assert!(
        !html.contains("admin@example.com"),
        "no admin data leaks into the 403 page"
    );

    for endpoint in [
        "admin/dashboard",
        "admin/users",
        "admin/user",
        "admin/set_plan",
        "admin/set_role",
        "admin/set_disabled",
        "admin/plans",
        "admin/save_plan",
        "admin/audit",
    ] {
        let form = [
            ("id", "1"),
            ("user_id", "1"),
            ("plan_id", "1"),
            ("admin", "false"),
            ("disabled", "true"),
            ("name", "x"),
            ("requests_per_minute", ""),
            ("requests_per_day", ""),
            ("tokens_per_day", ""),
            ("max_tokens", "1"),
        ];
        let call = app.call_with(&user, endpoint, &form).await;
        assert_eq!(call.status(), StatusCode::FORBIDDEN, "{endpoint}");
        assert!(!call.text().await.unwrap().contains("admin@example.com"));
    }
    for page in [
        "/admin/plans",
        "/admin/audit",
        "/admin/users/1",
        "/admin/export.csv",
    ] {
        assert_eq!(
            app.get_with(&user, page).await.status(),
            StatusCode::FORBIDDEN,
            "{page}"
        );
    }
    // The admin is still an enabled admin: nothing above changed anything.
    let admin: (String, i64) = sqlx::query_as("SELECT role, disabled FROM users WHERE id = 1")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(admin, ("admin".to_owned(), 0));
}

/// keyward with its first account (an admin, signed in on `app.client`)
/// and a second one, a user, signed in on the returned client.
async fn admin_and_a_user(db: TestDb) -> (crate::helpers::TestApp, reqwest::Client) {
    let app = spawn_app(db).await;
    app.signup("first@example.com", PASSWORD).await;
    let second = app.new_client();
    let form = [("email", "second@example.com"), ("password", PASSWORD)];
    app.call_with(&second, "signup", &form).await;
    (app, second)
}

async fn admin_count(app: &crate::helpers::TestApp) -> i64 {
    sqlx::query_scalar("SELECT COUNT(*) FROM users WHERE role = 'admin'")
        .fetch_one(&app.db)
        .await
        .unwrap()
}

async fn concurrent_signups_on_an_empty_database_make_exactly_one_admin(db: TestDb) {
    let app = spawn_app(db).await;
    let signups = (0..12).map(|i| {
        let client = app.new_client();
        let app = &app;
        async move {
            let email = format!("racer{i}@example.com");
            let form = [("email", email.as_str()), ("password", PASSWORD)];
            app.call_with(&client, "signup", &form).await.status()
        }
    });
    for status in futures::future::join_all(signups).await {
        assert_eq!(status, StatusCode::OK);
    }
    assert_eq!(admin_count(&app).await, 1);
}

async fn two_admins_demoting_each_other_at_once_leave_one_admin(db: TestDb) {
    let (app, second) = admin_and_a_user(db).await;
    let promoted = app
        .call("admin/set_role", &[("user_id", "2"), ("admin", "true")])
        .await;
    assert_eq!(promoted.status(), StatusCode::OK);
    // The promotion ended the second user's session: they sign in again,
    // now as an admin.
    app.login_with(&second, "second@example.com", PASSWORD)
        .await;
    assert_eq!(
        app.get_with(&second, "/admin").await.status(),
        StatusCode::OK
    );
    let (first_demotes, second_demotes) = tokio::join!(
        app.call("admin/set_role", &[("user_id", "2"), ("admin", "false")]),
        app.call_with(
            &second,
            "admin/set_role",
            &[("user_id", "1"), ("admin", "false")]
        ),
    );
    let changed = [first_demotes.status(), second_demotes.status()]
        .iter()
        .filter(|status| **status == StatusCode::OK)
        .count();
    assert_eq!(changed, 1, "one demotion wins, the other is refused");
    assert_eq!(admin_count(&app).await, 1);
}

async fn a_role_change_ends_the_users_sessions(db: TestDb) {
    let (app, second) = admin_and_a_user(db).await;
    assert_eq!(
        app.get_with(&second, "/settings").await.status(),
        StatusCode::OK
    );
    let promoted = app
        .call("admin/set_role", &[("user_id", "2"), ("admin", "true")])
        .await;
    assert_eq!(promoted.status(), StatusCode::OK);
    // The session from before the promotion is over: sign in again.
    assert_redirect(&app.get_with(&second, "/settings").await, "/login");
    app.login_with(&second, "second@example.com", PASSWORD)
        .await;
    assert_eq!(
        app.get_with(&second, "/admin").await.status(),
        StatusCode::OK
    );
    // The admin who made the change keeps their own session.
    assert_eq!(app.get("/admin").await.status(), StatusCode::OK);
}

async fn admin_sees_every_account(db: TestDb) {
    let app = spawn_app(db).await;
    app.signup("admin@example.com", PASSWORD).await;
    app.call_with(
        &app.new_client(),
        "signup",
        &[("email", "user@example.com"), ("password", PASSWORD)],
    )
    .await;

    assert_eq!(app.get("/admin").await.status(), StatusCode::OK);
    let users: serde_json::Value = app
        .call("admin/users", &[("sort", "email")])
        .await
        .json()
        .await
        .unwrap();
    let emails: Vec<&str> = users["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["email"].as_str().unwrap())
        .collect();
    assert_eq!(emails, ["admin@example.com", "user@example.com"]);
    let html = app.get("/admin").await.text().await.unwrap();
    assert!(
        html.contains(r#"data-email="user@example.com""#),
        "SSR renders the users table"
    );
    assert!(html.contains("<svg"), "charts are rendered on the server");
}

db_tests!(
    a_role_change_ends_the_users_sessions,
    concurrent_signups_on_an_empty_database_make_exactly_one_admin,
    two_admins_demoting_each_other_at_once_leave_one_admin,
    anonymous_visitors_are_sent_to_login,
    non_admin_gets_403_from_page_and_server_functions,
    admin_sees_every_account,
);
