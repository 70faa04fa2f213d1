//! A steady load of non-streamed gateway calls through nginx, each
//! outcome kept with its latency, and the report the scenarios print.

use std::{
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use reqwest::Client;
use serde_json::json;

use crate::stack::MODEL;

#[derive(Debug, Clone)]
pub struct Outcome {
    /// HTTP status, or 0 when no answer came (connection error, timeout).
    pub status: u16,
    pub latency: Duration,
    pub body: String,
    /// When the call started, from the start of the load.
    pub started: Duration,
}

pub struct Load {
    stop: Arc<AtomicBool>,
    workers: Vec<tokio::task::JoinHandle<Vec<Outcome>>>,
}

impl Load {
    /// `workers` callers, each sending its next call when the last one is
    /// answered.
    pub fn start(client: Client, url: String, token: String, workers: usize) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let began = Instant::now();
        let workers = (0..workers)
            .map(|_| {
                let (client, url, token, stop) =
                    (client.clone(), url.clone(), token.clone(), stop.clone());
                tokio::spawn(async move {
                    let mut outcomes = Vec::new();
                    while !stop.load(Ordering::Relaxed) {
                        outcomes.push(call(&client, &url, &token, began).await);
                    }
                    outcomes
                })
            })
            .collect();
        Load { stop, workers }
    }

    /// Stops sending and returns every outcome, in no particular order.
    pub async fn finish(self) -> Vec<Outcome> {
        self.stop.store(true, Ordering::Relaxed);
        let mut outcomes = Vec::new();
        for worker in self.workers {
            outcomes.extend(worker.await.unwrap());
        }
        outcomes
    }
}

/// One call; `started` is counted from `began`.
pub async fn call(client: &Client, url: &str, token: &str, began: Instant) -> Outcome {
    let started = began.elapsed();
    let sent = Instant::now();
    let answer = client
        .post(url)
        .header("x-api-key", token)
        .json(&json!({
            "model": MODEL,
            "max_tokens": 64,
            "messages": [{ "role": "user", "content": "hello through nginx" }],
        }))
        .send()
        .await;
    let (status, body) = match answer {
        Ok(answer) => {
            let status = answer.status().as_u16();
            (status, answer.text().await.unwrap_or_default())
        }
        Err(err) => (0, err.to_string()),
    };
    Outcome {
        status,
        latency: sent.elapsed(),
        body,
        started,
    }
}

/// The `q` quantile of the outcomes' latencies.
pub fn quantile(outcomes: &[Outcome], q: f64) -> Duration {
    let mut latencies: Vec<Duration> = outcomes.iter().map(|outcome| outcome.latency).collect();
    latencies.sort();
    latencies
        .get(((latencies.len() as f64 - 1.0) * q).round() as usize)
        .copied()
        .unwrap_or_default()
}

/// One line for the test's output: what was sent and how it went.
pub fn report(what: &str, outcomes: &[Outcome]) {
    let failed = outcomes
        .iter()
        .filter(|outcome| outcome.status != 200)
        .count();
    println!(
        "deploy-test {what}: {} requests through nginx, {failed} not 200, p50 {:.1} ms, p99 {:.1} ms",
        outcomes.len(),
        quantile(outcomes, 0.5).as_secs_f64() * 1e3,
        quantile(outcomes, 0.99).as_secs_f64() * 1e3,
    );
}
