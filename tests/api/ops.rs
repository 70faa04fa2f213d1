//! Health, metrics, restarts.

use reqwest::StatusCode;

use crate::{
    db_tests,
    helpers::{spawn_app, spawn_app_on, TestDb, PASSWORD},
};

async fn healthz_reports_the_database(db: TestDb) {
    let app = spawn_app(db).await;
    let response = app.get("/healthz").await;
    assert_eq!(response.status(), StatusCode::OK);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["status"], "ok");
    assert_eq!(body["database"], "ok");
}

async fn metrics_count_requests_by_route_and_status(db: TestDb) {
    let app = spawn_app(db).await;
    app.get("/healthz").await;
    app.get("/healthz").await;
    app.get("/admin").await;
    let text = app.get("/metrics").await.text().await.unwrap();
    assert!(
        text.contains(
            r#"keyward_http_requests_total{method="GET",route="/healthz",status="200"} 2"#
        ),
        "{text}"
    );
    assert!(
        text.contains(r#"keyward_http_requests_total{method="GET",route="/admin",status="303"} 1"#),
        "{text}"
    );
    assert!(
        text.contains(r#"keyward_http_request_duration_seconds_count{route="/healthz"} 2"#),
        "{text}"
    );
    assert!(
        text.contains("# TYPE keyward_upstream_requests_total counter"),
        "{text}"
    );
}

async fn accounts_survive_a_restart(db: TestDb) {
    let app = spawn_app(db).await;
    app.signup("ada@example.com", PASSWORD).await;
    let url = app.stop().await;
    let again = spawn_app_on(&url, &[]).await;
    assert_eq!(
        again.login("ada@example.com", PASSWORD).await.status(),
        StatusCode::OK
    );
}

async fn unknown_pages_are_404(db: TestDb) {
    let app = spawn_app(db).await;
    let response = app.get("/no/such/page").await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    assert!(response.text().await.unwrap().contains("Page not found"));
}

db_tests!(
    healthz_reports_the_database,
    metrics_count_requests_by_route_and_status,
    accounts_survive_a_restart,
    unknown_pages_are_404,
);
