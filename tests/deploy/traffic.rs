//! Everyday traffic through nginx: sessions that work on either instance,
//! the TLS headers, streams that arrive event by event, and a free limit
//! both instances count together.

use std::time::{Duration, Instant};

use futures::StreamExt;
use reqwest::{header, StatusCode};
use serde_json::{json, Value};

use crate::stack::{Plan, Stack, MODEL};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_work_on_both_instances_behind_tls() {
    let stack = Stack::start("sessions", Plan::ROOMY).await;

    // Plain HTTP only redirects to https.
    let plain = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(format!("{}/login", stack.http))
        .send()
        .await
        .unwrap();
    assert_eq!(plain.status(), StatusCode::MOVED_PERMANENTLY);
    assert!(plain.headers()[header::LOCATION]
        .to_str()
        .unwrap()
        .starts_with("https://"));

    // Signup sets a Secure, HttpOnly session cookie, and HSTS is on.
    let browser = stack.browser();
    let signup = browser
        .post(stack.url("/api/signup"))
        .form(&[
            ("email", "ada@example.com"),
            ("password", crate::stack::PASSWORD),
        ])
        // A client's own X-Forwarded-For must not reach keyward's audit log.
        .header("x-forwarded-for", "203.0.113.9")
        .send()
        .await
        .unwrap();
    assert_eq!(signup.status(), StatusCode::OK, "signup");
    let cookie = signup.headers()[header::SET_COOKIE]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(cookie.starts_with("keyward_session="), "{cookie}");
    assert!(
        cookie.contains("; Secure") && cookie.contains("; HttpOnly"),
        "{cookie}"
    );
    let hsts: Vec<_> = signup
        .headers()
        .get_all("strict-transport-security")
        .iter()
        .collect();
    assert_eq!(hsts, ["max-age=31536000; includeSubDomains"], "HSTS, once");

    // Requests alternate between the instances; the session holds on both.
    let before = [
        stack.instances[0]
            .metric("keyward_http_requests_total{method=\"GET\",route=\"/settings\"")
            .await,
        stack.instances[1]
            .metric("keyward_http_requests_total{method=\"GET\",route=\"/settings\"")
            .await,
    ];
    for _ in 0..6 {
        let page = browser.get(stack.url("/settings")).send().await.unwrap();
        assert_eq!(
            page.status(),
            StatusCode::OK,
            "signed in on whichever instance answers"
        );
        assert!(page.text().await.unwrap().contains("ada@example.com"));
    }
    for (index, before) in before.into_iter().enumerate() {
        let after = stack.instances[index]
            .metric("keyward_http_requests_total{method=\"GET\",route=\"/settings\"")
            .await;
        assert!(
            after >= before + 2.0,
            "instance {index} served its share: {before} → {after}"
        );
    }

    // Logging in again works the same way, and the audit log has the
    // address nginx saw, not the one the client claimed.
    let again = stack.browser();
    let login = again
        .post(stack.url("/api/login"))
        .form(&[
            ("email", "ada@example.com"),
            ("password", crate::stack::PASSWORD),
        ])
        .header("x-forwarded-for", "203.0.113.9")
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), StatusCode::OK, "login");
    assert_eq!(
        again.get(stack.url("/chat")).send().await.unwrap().status(),
        StatusCode::OK
    );
    let db = stack.owner_db().await;
    let addresses: Vec<Option<String>> = sqlx::query_scalar("SELECT ip FROM audit_log")
        .fetch_all(&db)
        .await
        .unwrap();
    assert!(!addresses.is_empty());
    assert!(
        addresses
            .iter()
            .all(|ip| ip.as_deref() == Some("127.0.0.1")),
        "{addresses:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_arrive_through_nginx_event_by_event() {
    let stack = Stack::start("streams", Plan::ROOMY).await;
    let browser = stack.browser();
    stack.sign_up(&browser, "ada@example.com").await;
    let token = stack.token_for("ada@example.com");
    // The mock sends one word every 200 ms.
    let words = 10;
    let prompt = format!("mock:echo {}mock:slow", "word ".repeat(words));

    let gateway = stack
        .api()
        .post(stack.url("/v1/messages"))
        .header("x-api-key", &token)
        .json(&json!({
            "model": MODEL, "max_tokens": 256, "stream": true,
            "messages": [{ "role": "user", "content": prompt }],
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(gateway.status(), StatusCode::OK);
    let (first, last) = arrival_of(gateway, "content_block_delta", "message_stop").await;
    println!("deploy-test gateway stream: first delta at {first:?}, end at {last:?}");
    assert!(
        last - first >= Duration::from_millis(200 * (words as u64 - 3)),
        "the first delta came only {:?} before the end: buffered",
        last - first
    );

    let chat = browser
        .post(stack.url("/chat/send"))
        .json(&json!({ "conversation_id": null, "text": prompt, "model": MODEL }))
        .send()
        .await
        .unwrap();
    assert_eq!(chat.status(), StatusCode::OK);
    let (first, last) = arrival_of(chat, "\"delta\"", "\"finished\"").await;
    println!("deploy-test chat stream: first delta at {first:?}, end at {last:?}");
    assert!(
        last - first >= Duration::from_millis(200 * (words as u64 - 3)),
        "the first chat delta came only {:?} before the end: buffered",
        last - first
    );
}

/// When the first chunk holding `first` and the one holding `last`
/// arrived, from the response's start.
async fn arrival_of(response: reqwest::Response, first: &str, last: &str) -> (Duration, Duration) {
    let start = Instant::now();
    let mut body = response.bytes_stream();
    let mut seen = String::new();
    let mut first_at = None;
    while let Some(chunk) = body.next().await {
        seen.push_str(&String::from_utf8_lossy(&chunk.unwrap()));
        if first_at.is_none() && seen.contains(first) {
            first_at = Some(start.elapsed());
        }
        if seen.contains(last) {
            return (
                first_at.expect("the first event before the last"),
                start.elapsed(),
            );
        }
    }
    panic!("the stream ended without {last}: {seen}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_free_limit_is_shared_by_both_instances() {
    let plan = Plan {
        requests_per_day: 5,
        requests_per_minute: 1_000,
    };
    let stack = Stack::start("limits", plan).await;
    let browser = stack.browser();
    stack.sign_up(&browser, "ada@example.com").await;
    let token = stack.token_for("ada@example.com");
    let api = stack.api();
    let calls = (0..30).map(|_| {
        let (api, url, token) = (api.clone(), stack.url("/v1/messages"), token.clone());
        async move {
            let answer = api
                .post(url)
                .header("x-api-key", token)
                .json(&json!({
                    "model": MODEL, "max_tokens": 64,
                    "messages": [{ "role": "user", "content": "one of thirty" }],
                }))
                .send()
                .await
                .unwrap();
            let status = answer.status().as_u16();
            let body: Value = answer.json().await.unwrap();
            (status, body)
        }
    });
    let answers = futures::future::join_all(calls).await;
    let admitted = answers.iter().filter(|(status, _)| *status == 200).count();
    let limited: Vec<_> = answers
        .iter()
        .filter(|(status, _)| *status == 429)
        .collect();
    assert_eq!(admitted, 5, "{answers:?}");
    assert_eq!(limited.len(), 25, "{answers:?}");
    assert!(limited
        .iter()
        .all(|(_, body)| body["error"]["type"] == "rate_limit_error"));
    assert_eq!(stack.mock.calls().await, 5, "upstream calls");
}
