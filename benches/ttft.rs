//! Time to first token: the mock upstream directly vs. through keyward's chat
//! endpoint (session check, routing, conversation rows, upstream call, relay).
//! Run with `make bench`; prints p50/p95/p99 and keyward's added latency.

mod support;

use std::time::{Duration, Instant};

use clap::Parser;
use keyward::server::{config::Cli, startup::Application};
use serde_json::json;
use support::{ms, percentile, start_mock};

const ROUNDS: usize = 300;
const WARMUP: usize = 20;
const PLATFORM_KEY: &str = "sk-ant-api03-bench-mock-platform-key-BNCH";

fn report(name: &str, mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    let (p50, p95, p99) = (
        percentile(&samples, 0.5),
        percentile(&samples, 0.95),
        percentile(&samples, 0.99),
    );
    println!(
        "{name:<28} p50 {:>8.3} ms   p95 {:>8.3} ms   p99 {:>8.3} ms",
        ms(p50),
        ms(p95),
        ms(p99)
    );
    p50
}

async fn first_chunk_containing(response: reqwest::Response, needle: &str) -> Instant {
    let mut response = response;
    let mut seen = String::new();
    loop {
        let chunk = response
            .chunk()
            .await
            .expect("stream readable")
            .expect("stream has a delta");
        seen.push_str(&String::from_utf8_lossy(&chunk));
        if seen.contains(needle) {
            let at = Instant::now();
            while response.chunk().await.ok().flatten().is_some() {}
            return at;
        }
    }
}

#[tokio::main]
async fn main() {
    let (mut mock, mock_url) = start_mock(&[PLATFORM_KEY]);

    let db_path = std::env::temp_dir().join(format!("keyward-bench-{}.db", std::process::id()));
    let database_url = format!("sqlite:{}?mode=rwc", db_path.display());
    let config = Cli::try_parse_from([
        "keyward",
        "--database-url",
        &database_url,
        "--master-key",
        "YmVuY2gtbWFzdGVyLWtleS0zMi1ieXRlcy1sb25nISE=",
        "--anthropic-base-url",
        &mock_url,
        "--anthropic-api-key",
        PLATFORM_KEY,
        // Limits stay enforced (a reservation per turn) but never refuse here.
        "--requests-per-day",
        "1000000",
        "--requests-per-minute",
        "1000000",
        "--tokens-per-day",
        "4000000000",
    ])
    .expect("bench config")
    .config;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let options = leptos::config::LeptosOptions::builder()
        .output_name("keyward")
        .site_root("target/site")
        .build();
    let app = Application::build_with_listener(config, options, listener)
        .await
        .expect("app");
    let base = format!("http://{}", app.local_addr());
    tokio::spawn(app.run_until(std::future::pending()));

    let direct = reqwest::Client::new();
    let browser = reqwest::Client::builder()
        .cookie_store(true)
        .build()
        .expect("client");
    let signup = browser
        .post(format!("{base}/api/signup"))
        .header("accept", "application/json")
        .form(&[
            ("email", "bench@example.com"),
            ("password", "correct horse battery staple"),
        ])
        .send()
        .await
        .expect("signup");
    assert!(signup.status().is_success(), "signup: {}", signup.status());

    let upstream_body = json!({
        "model": "claude-haiku-4-5", "max_tokens": 1024, "stream": true,
        "messages": [{ "role": "user", "content": "Hello there" }],
    });
    let chat_body =
        json!({ "conversation_id": null, "text": "Hello there", "model": "claude-haiku-4-5" });

    let mut via_mock = Vec::with_capacity(ROUNDS);
    let mut via_keyward = Vec::with_capacity(ROUNDS);
    for round in 0..WARMUP + ROUNDS {
        let start = Instant::now();
        let response = direct
            .post(format!("{mock_url}/v1/messages"))
            .header("x-api-key", PLATFORM_KEY)
            .header("anthropic-version", "2023-06-01")
            .json(&upstream_body)
            .send()
            .await
            .expect("mock answers");
        let first = first_chunk_containing(response, "content_block_delta").await - start;

        let start = Instant::now();
        let response = browser
            .post(format!("{base}/chat/send"))
            .json(&chat_body)
            .send()
            .await
            .expect("keyward answers");
        assert!(
            response.status().is_success(),
            "chat: {}",
            response.status()
        );
        let through = first_chunk_containing(response, "\"type\":\"delta\"").await - start;
        if round >= WARMUP {
            via_mock.push(first);
            via_keyward.push(through);
        }
    }
    println!("time to first token, {ROUNDS} sequential turns (after {WARMUP} warm-up), SQLite, release build:");
    let direct_p50 = report("mock upstream directly", via_mock);
    let keyward_p50 = report("through keyward /chat/send", via_keyward);
    println!(
        "keyward adds {:.3} ms at p50",
        ms(keyward_p50.saturating_sub(direct_p50))
    );
    let _ = mock.kill();
    let _ = mock.wait();
    let _ = std::fs::remove_file(&db_path);
}
