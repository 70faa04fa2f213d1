//! Hostile clients on the socket: what they send gets a 4xx or a closed
//! connection, and the server stays healthy for everyone else.

use std::time::Duration;

use reqwest::StatusCode;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

use crate::helpers::{spawn_app, TestApp, TestDb};

fn address(app: &TestApp) -> String {
    app.base.trim_start_matches("http://").to_owned()
}

/// Writes `bytes` and reads the answer's status line, if one comes before
/// the connection closes.
async fn status_after_sending(app: &TestApp, bytes: &[u8]) -> Option<u16> {
    let mut stream = TcpStream::connect(address(app)).await.unwrap();
    // The server may answer and close before it has read everything.
    let _ = stream.write_all(bytes).await;
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer)).await;
    assert!(
        read.is_ok(),
        "the server answers or closes, it does not hang"
    );
    let text = String::from_utf8_lossy(&answer);
    text.split_whitespace()
        .nth(1)
        .and_then(|status| status.parse().ok())
}

async fn healthy(app: &TestApp) {
    assert_eq!(app.get("/healthz").await.status(), StatusCode::OK);
}

#[tokio::test]
async fn oversized_headers_get_431() {
    let app = spawn_app(TestDb::Sqlite).await;
    let huge = "x".repeat(512 * 1024);
    let request = format!(
        "GET /healthz HTTP/1.1\r\nHost: {}\r\nX-Padding: {huge}\r\n\r\n",
        address(&app)
    );
    let status = status_after_sending(&app, request.as_bytes()).await;
    assert_eq!(status, Some(431));
    healthy(&app).await;
}

#[tokio::test]
async fn random_bytes_get_400_and_the_server_stays_healthy() {
    let app = spawn_app(TestDb::Sqlite).await;
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    for round in 0..20 {
        let garbage: Vec<u8> = (0..(64 + round * 97))
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                (seed >> 24) as u8
            })
            .chain(*b"\r\n\r\n")
            .collect();
        let status = status_after_sending(&app, &garbage).await;
        assert!(
            status.is_none() || status == Some(400),
            "round {round}: {status:?}"
        );
    }
    healthy(&app).await;
}

#[tokio::test]
async fn a_thousand_idle_connections_do_not_stop_a_normal_request() {
    let app = spawn_app(TestDb::Sqlite).await;
    let mut idle = Vec::new();
    for _ in 0..1_000 {
        idle.push(TcpStream::connect(address(&app)).await.unwrap());
    }
    // Half of them started a request head and stalled.
    for stream in idle.iter_mut().step_by(2) {
        stream
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
            .await
            .unwrap();
    }
    let answer = tokio::time::timeout(Duration::from_secs(10), app.get("/healthz")).await;
    assert_eq!(answer.expect("answered in time").status(), StatusCode::OK);
    drop(idle);
    healthy(&app).await;
}

/// A body trickled in slower than `KEYWARD_BODY_READ_TIMEOUT_SECS` is
/// answered 408 (in Anthropic's shape on the gateway), not waited for.
#[tokio::test]
async fn a_body_trickled_in_is_cut_at_the_timeout() {
    let mock = crate::chat_helpers::mock_with_platform_key();
    let app =
        crate::chat_helpers::chat_app(TestDb::Sqlite, &mock, &["--body-read-timeout-secs", "1"])
            .await;
    let token = crate::gateway::create_token(&app, "slow").await;
    for (path, content_type) in [
        ("/api/login", "application/x-www-form-urlencoded"),
        ("/v1/messages", "application/json"),
    ] {
        let mut stream = TcpStream::connect(address(&app)).await.unwrap();
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: {host}\r\nOrigin: {base}\r\nx-api-key: {token}\r\n\
             Content-Type: {content_type}\r\nContent-Length: 1000\r\n\r\n",
            host = address(&app),
            base = app.base,
        );
        stream.write_all(head.as_bytes()).await.unwrap();
        stream.write_all(b"email=a").await.unwrap();
        let started = std::time::Instant::now();
        let mut answer = vec![0; 512];
        let read = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut answer))
            .await
            .expect("answered before the test's own timeout")
            .unwrap();
        let text = String::from_utf8_lossy(&answer[..read]);
        assert!(text.starts_with("HTTP/1.1 408"), "{path}: {text}");
        assert!(
            started.elapsed() >= Duration::from_millis(900),
            "{path}: not before the timeout"
        );
    }
    healthy(&app).await;
}
