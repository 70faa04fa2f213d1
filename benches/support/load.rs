//! Load: workers sending one request body back to back, with latencies,
//! errors and the CPU time each process spent.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use serde_json::Value;

use super::percentile;

/// Linux reports process CPU time in ticks of 1/100 s (USER_HZ).
const TICKS_PER_SECOND: f64 = 100.0;
pub const RUN: Duration = Duration::from_secs(3);
pub const WARMUP: Duration = Duration::from_millis(500);

/// Where load goes, and the API keys its workers use (worker `i` takes
/// `keys[i % keys.len()]`: several keys are several users).
pub struct Target {
    pub url: String,
    pub keys: Vec<String>,
}

#[derive(Default)]
pub struct Sample {
    total: Vec<Duration>,
    first_byte: Vec<Duration>,
    errors: usize,
    elapsed: Duration,
    /// CPU time of the load generator, the mock and keyward, in ticks.
    cpu: [u64; 3],
}

impl Sample {
    pub fn absorb(&mut self, other: Sample) {
        self.total.extend(other.total);
        self.first_byte.extend(other.first_byte);
        self.errors += other.errors;
        self.elapsed += other.elapsed;
        for (mine, theirs) in self.cpu.iter_mut().zip(other.cpu) {
            *mine += theirs;
        }
    }
}

pub struct Outcome {
    pub rps: f64,
    pub p50: Duration,
    pub p99: Duration,
    pub ttfb_p50: Duration,
    pub errors: usize,
    /// CPU microseconds per request: load generator, mock, keyward.
    pub cpu_us: [f64; 3],
}

impl From<Sample> for Outcome {
    fn from(mut all: Sample) -> Self {
        all.total.sort();
        all.first_byte.sort();
        let requests = all.total.len().max(1) as f64;
        Outcome {
            rps: all.total.len() as f64 / all.elapsed.as_secs_f64(),
            p50: percentile(&all.total, 0.5),
            p99: percentile(&all.total, 0.99),
            ttfb_p50: percentile(&all.first_byte, 0.5),
            errors: all.errors,
            cpu_us: all
                .cpu
                .map(|ticks| ticks as f64 / TICKS_PER_SECOND * 1e6 / requests),
        }
    }
}

/// CPU time (user + system, all threads) a process has used, in ticks.
pub fn cpu_ticks(pid: &str) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name, which is in parentheses and may hold spaces.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or("", |(_, rest)| rest)
        .split_whitespace()
        .collect();
    let field = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // utime and stime are fields 14 and 15 of the whole line.
    field(11) + field(12)
}

/// The load generator's client: connections kept for every worker, no
/// Nagle delay.
pub fn load_client() -> reqwest::Client {
    reqwest::Client::builder()
        .pool_max_idle_per_host(128)
        .tcp_nodelay(true)
        .build()
        .expect("client")
}

/// `concurrency` workers send `body` back to back for `RUN` after a warm-up.
pub async fn load(
    client: &reqwest::Client,
    target: &Target,
    body: &Value,
    concurrency: usize,
    pids: &[String; 3],
) -> Sample {
    let body = Arc::new(body.to_string());
    let run = |duration: Duration| {
        let workers = (0..concurrency).map(|worker| {
            let (client, body) = (client.clone(), body.clone());
            let url = format!("{}/v1/messages", target.url);
            let key = target.keys[worker % target.keys.len()].clone();
            tokio::spawn(async move {
                let mut sample = Sample::default();
                let deadline = Instant::now() + duration;
                while Instant::now() < deadline {
                    let start = Instant::now();
                    let sent = client
                        .post(&url)
                        .header("x-api-key", &key)
                        .header("anthropic-version", "2023-06-01")
                        .header("content-type", "application/json")
                        .body(body.as_str().to_owned())
                        .send()
                        .await;
                    let Ok(mut response) = sent else {
                        sample.errors += 1;
                        continue;
                    };
                    if !response.status().is_success() {
                        sample.errors += 1;
                    }
                    let mut first = None;
                    while let Ok(Some(_)) = response.chunk().await {
                        first.get_or_insert_with(|| start.elapsed());
                    }
                    sample
                        .first_byte
                        .push(first.unwrap_or_else(|| start.elapsed()));
                    sample.total.push(start.elapsed());
                }
                sample
            })
        });
        futures::future::join_all(workers)
    };
    run(WARMUP).await;
    let cpu_before = pids.each_ref().map(|pid| cpu_ticks(pid));
    let started = Instant::now();
    let mut all = Sample::default();
    for sample in run(RUN).await {
        all.absorb(sample.expect("worker"));
    }
    all.elapsed = started.elapsed();
    let cpu_after = pids.each_ref().map(|pid| cpu_ticks(pid));
    for i in 0..3 {
        all.cpu[i] = cpu_after[i].saturating_sub(cpu_before[i]);
    }
    all
}

/// Resident and peak memory of a process, in MiB, from /proc.
pub fn memory_mib(pid: u32) -> (f64, f64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
            .map_or(0.0, |kib| kib / 1024.0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}
