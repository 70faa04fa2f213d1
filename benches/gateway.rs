//! Gateway overhead under load: the mock upstream directly vs. the same
//! requests through keyward's `/v1/messages` (token check, routing, relay,
//! ledger), at concurrency 1, 16 and 64, JSON and SSE, in one run.
//!
//! keyward runs as its own release process (so its RSS is its own) on a
//! fresh SQLite database; the caller is a premium user on their own key, the
//! gateway's common heavy-use path. Run with `make bench`.
//!
//! The load generator, the mock and keyward share the machine's cores, so
//! one run's throughput swings with whatever else runs. Each row therefore
//! alternates direct and keyward runs `ROUNDS` times and pools the samples,
//! and it also reports the CPU time each process spent per request, which
//! does not depend on scheduling luck.

mod support;

use std::{
    io::Write,
    process::{Child, Command, Stdio},
    sync::Arc,
    time::{Duration, Instant},
};

use serde_json::{json, Value};
use support::{ms, percentile, start_mock};

const PLATFORM_KEY: &str = "sk-ant-api03-bench-mock-platform-key-BNCH";
const USER_KEY: &str = "sk-ant-api03-bench-mock-user-key-0001-BNCH";
const RUN: Duration = Duration::from_secs(3);
const WARMUP: Duration = Duration::from_millis(500);
const ROUNDS: usize = 3;
/// Linux reports process CPU time in ticks of 1/100 s (USER_HZ).
const TICKS_PER_SECOND: f64 = 100.0;

struct Target {
    url: String,
    key: String,
}

#[derive(Default)]
struct Sample {
    total: Vec<Duration>,
    first_byte: Vec<Duration>,
    errors: usize,
    elapsed: Duration,
    /// CPU time of the load generator, the mock and keyward, in ticks.
    cpu: [u64; 3],
}

impl Sample {
    fn absorb(&mut self, other: Sample) {
        self.total.extend(other.total);
        self.first_byte.extend(other.first_byte);
        self.errors += other.errors;
        self.elapsed += other.elapsed;
        for (mine, theirs) in self.cpu.iter_mut().zip(other.cpu) {
            *mine += theirs;
        }
    }
}

struct Outcome {
    rps: f64,
    p50: Duration,
    p99: Duration,
    ttfb_p50: Duration,
    errors: usize,
    /// CPU microseconds per request: load generator, mock, keyward.
    cpu_us: [f64; 3],
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
fn cpu_ticks(pid: &str) -> u64 {
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

/// `concurrency` workers send `body` back to back for `RUN` after a warm-up.
async fn load(
    client: &reqwest::Client,
    target: &Target,
    body: &Value,
    concurrency: usize,
    pids: &[String; 3],
) -> Sample {
    let body = Arc::new(body.to_string());
    let run = |duration: Duration| {
        let workers = (0..concurrency).map(|_| {
            let (client, body) = (client.clone(), body.clone());
            let url = format!("{}/v1/messages", target.url);
            let key = target.key.clone();
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
fn memory_mib(pid: u32) -> (f64, f64) {
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

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

struct Keyward {
    child: Child,
    base: String,
    _dir: std::path::PathBuf,
}

impl Drop for Keyward {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self._dir);
    }
}

async fn start_keyward(mock_url: &str) -> Keyward {
    let dir = std::env::temp_dir().join(format!("keyward-gateway-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let addr = format!("127.0.0.1:{}", free_port());
    let bin = std::env::var("KEYWARD_BIN").unwrap_or_else(|_| "target/release/keyward".into());
    let child = Command::new(&bin)
        .arg("serve")
        .env(
            "DATABASE_URL",
            format!("sqlite:{}?mode=rwc", dir.join("bench.db").display()),
        )
        .env("LEPTOS_SITE_ADDR", &addr)
        .env("ANTHROPIC_BASE_URL", mock_url)
        .env("ANTHROPIC_API_KEY", PLATFORM_KEY)
        .env(
            "KEYWARD_MASTER_KEY",
            "YmVuY2gtbWFzdGVyLWtleS0zMi1ieXRlcy1sb25nISE=",
        )
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("start {bin}: {e} (build it with `make build`)"));
    let base = format!("http://{addr}");
    let keyward = Keyward {
        child,
        base,
        _dir: dir,
    };
    for _ in 0..200 {
        if reqwest::get(format!("{}/healthz", keyward.base))
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            return keyward;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("keyward did not become healthy");
}

/// Signs up, saves the user's own key and creates a personal token.
async fn premium_token(base: &str) -> String {
    let browser = reqwest::Client::builder()
        .cookie_store(true)
        .build()
        .expect("client");
    let call = |endpoint: &str, form: Vec<(&str, &str)>| {
        browser
            .post(format!("{base}/api/{endpoint}"))
            .header("accept", "application/json")
            .form(&form)
            .send()
    };
    let signup = call(
        "signup",
        vec![
            ("email", "bench@example.com"),
            ("password", "correct horse battery staple"),
        ],
    )
    .await
    .expect("signup");
    assert!(signup.status().is_success(), "signup: {}", signup.status());
    let saved = call("keys/save", vec![("api_key", USER_KEY)])
        .await
        .expect("save key");
    assert!(saved.status().is_success(), "save key: {}", saved.status());
    let created: Value = call("tokens/create", vec![("name", "bench")])
        .await
        .expect("token")
        .json()
        .await
        .expect("token JSON");
    created["token"].as_str().expect("token").to_owned()
}

#[tokio::main]
async fn main() {
    let (mut mock, mock_url) = start_mock(&[PLATFORM_KEY, USER_KEY]);
    let keyward = start_keyward(&mock_url).await;
    let token = premium_token(&keyward.base).await;
    let pid = keyward.child.id();
    let (_, startup_peak) = memory_mib(pid);
    // From here the peak counts the gateway runs only: start-up and signup
    // hash passwords with argon2id, which briefly takes 19 MiB each time.
    let peak_reset = std::fs::write(format!("/proc/{pid}/clear_refs"), "5").is_ok();
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(128)
        .tcp_nodelay(true)
        .build()
        .expect("client");
    let direct = Target {
        url: mock_url.clone(),
        key: USER_KEY.into(),
    };
    let through = Target {
        url: keyward.base.clone(),
        key: token,
    };

    let pids = ["self".to_owned(), mock.id().to_string(), pid.to_string()];
    println!(
        "gateway load: {ROUNDS} alternating rounds of {} s per path after {} ms warm-up; mock upstream with no delay; keyward release build, SQLite, premium user",
        RUN.as_secs(),
        WARMUP.as_millis()
    );
    println!(
        "{:<6} {:>3}  {:<8} {:>9} {:>9} {:>9} {:>10} {:>6}   {:>24}",
        "mode",
        "c",
        "path",
        "rps",
        "p50 ms",
        "p99 ms",
        "ttfb p50",
        "errors",
        "CPU µs/req: load mock kw"
    );
    let mut stdout = std::io::stdout();
    let mut summary = Vec::new();
    // `-- json 16` (any of "json", "sse", 1, 16, 64) runs only matching rows,
    // e.g. to profile one of them.
    let (modes, concurrencies): (Vec<String>, Vec<String>) = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .partition(|a| a == "json" || a == "sse");
    let wanted = |mode: &str, concurrency: usize| {
        (modes.is_empty() || modes.iter().any(|m| m == mode))
            && (concurrencies.is_empty() || concurrencies.contains(&concurrency.to_string()))
    };
    for stream in [false, true] {
        let mode = if stream { "sse" } else { "json" };
        let body = json!({
            "model": "claude-haiku-4-5", "max_tokens": 256, "stream": stream,
            "messages": [{ "role": "user", "content": "Hello there, how are you today?" }],
        });
        for concurrency in [1, 16, 64] {
            if !wanted(mode, concurrency) {
                continue;
            }
            let mut pooled = [Sample::default(), Sample::default()];
            for _ in 0..ROUNDS {
                for (i, target) in [&direct, &through].into_iter().enumerate() {
                    pooled[i].absorb(load(&client, target, &body, concurrency, &pids).await);
                }
            }
            let row = pooled.map(Outcome::from);
            for (path, outcome) in ["direct", "keyward"].iter().zip(&row) {
                let [load, mock, kw] = outcome.cpu_us;
                println!(
                    "{mode:<6} {concurrency:>3}  {path:<8} {:>9.0} {:>9.3} {:>9.3} {:>10.3} {:>6}   {load:>8.1} {mock:>6.1} {kw:>6.1}",
                    outcome.rps,
                    ms(outcome.p50),
                    ms(outcome.p99),
                    ms(outcome.ttfb_p50),
                    outcome.errors
                );
            }
            let _ = stdout.flush();
            summary.push((mode, concurrency, row));
        }
    }
    let (rss, peak) = memory_mib(pid);
    println!();
    for (mode, concurrency, row) in &summary {
        println!(
            "{mode:<4} c={concurrency:<3} keyward throughput {:>5.1} % of direct, p99 added {:>7.3} ms",
            row[1].rps / row[0].rps * 100.0,
            ms(row[1].p99) - ms(row[0].p99)
        );
    }
    if peak_reset {
        println!(
            "keyward memory after the runs: RSS {rss:.1} MiB, peak during the runs {peak:.1} MiB (start-up and signup peak {startup_peak:.1} MiB)"
        );
    } else {
        println!("keyward memory after the runs: RSS {rss:.1} MiB, peak {peak:.1} MiB");
    }
    drop(keyward);
    let _ = mock.kill();
    let _ = mock.wait();
}
