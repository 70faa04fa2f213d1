//! Gateway overhead under load: the mock upstream directly vs. the same
//! requests through keyward's `/v1/messages` (token check, routing, relay,
//! ledger), at concurrency 1, 16 and 64, JSON and SSE, in one run.
//!
//! keyward runs as its own release process (so its RSS is its own) on a
//! fresh SQLite database; the caller is a premium user on their own key, the
//! gateway's common heavy-use path. Run with `make bench`.
//!
//! Every row runs in two layouts. In the deployed shape keyward has cores of
//! its own and its callers and the upstream run elsewhere, so "dedicated"
//! pins keyward to one core and the load generator and the mock to the
//! rest (in the direct runs too). "shared" lets all three use every core:
//! keyward's CPU time then comes out of the mock's and the load
//! generator's, so that layout measures the whole machine's cost per call.
//!
//! One run's throughput swings with whatever else runs. Each row therefore
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

/// Starts keyward on `cores` (a `taskset` list; all when `None`). Pinned
/// from its start, it sizes its runtime to the cores it has, as it would in
/// a container limited to them.
async fn start_keyward(mock_url: &str, cores: Option<&str>) -> Keyward {
    let dir = std::env::temp_dir().join(format!(
        "keyward-gateway-bench-{}-{}",
        std::process::id(),
        cores.unwrap_or("all")
    ));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let addr = format!("127.0.0.1:{}", free_port());
    let bin = std::env::var("KEYWARD_BIN").unwrap_or_else(|_| "target/release/keyward".into());
    let mut command = match cores {
        Some(cores) => {
            let mut taskset = Command::new("taskset");
            taskset.args(["--cpu-list", cores, &bin]);
            taskset
        }
        None => Command::new(&bin),
    };
    let child = command
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

/// Where the processes may run. On a machine of its own keyward would not
/// share cores with its callers or with the upstream; on one machine it
/// does, and then its own CPU time comes out of theirs.
#[derive(Clone, Copy, PartialEq)]
enum Layout {
    /// keyward alone on the last core; the load generator and the mock on
    /// the others, in the direct runs too.
    Dedicated,
    /// Every process may run on every core.
    Shared,
}

/// `taskset` core lists for one layout.
struct Cores {
    /// For the load generator (this process) and the mock.
    callers: String,
    /// For keyward, from its start; `None` leaves it unpinned.
    keyward: Option<String>,
}

impl Layout {
    fn name(self) -> &'static str {
        match self {
            Layout::Dedicated => "dedicated",
            Layout::Shared => "shared",
        }
    }

    fn describe(self) -> &'static str {
        match self {
            Layout::Dedicated => {
                "keyward alone on the last core, load generator and mock on the others"
            }
            Layout::Shared => "all processes share every core",
        }
    }

    /// The cores of a machine with `machine_cores`; `None` when the layout
    /// cannot be had here.
    fn cores(self, machine_cores: usize) -> Option<Cores> {
        match self {
            Layout::Dedicated if machine_cores >= 2 && taskset_works() => Some(Cores {
                callers: format!("0-{}", machine_cores - 2),
                keyward: Some((machine_cores - 1).to_string()),
            }),
            Layout::Dedicated => None,
            Layout::Shared => Some(Cores {
                callers: format!("0-{}", machine_cores - 1),
                keyward: None,
            }),
        }
    }
}

fn taskset_works() -> bool {
    Command::new("taskset")
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

/// Moves every thread of `pid` onto `cores` (threads it starts later inherit).
fn pin(pid: u32, cores: &str) -> bool {
    Command::new("taskset")
        .args([
            "--all-tasks",
            "--cpu-list",
            "--pid",
            cores,
            &pid.to_string(),
        ])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

/// The rows the command line asks for: `-- json 16 dedicated` (any of
/// "json", "sse", 1, 16, 64, "dedicated", "shared") runs only matching
/// rows, e.g. to profile one of them; nothing given in a group means all.
struct Selection(Vec<String>);

impl Selection {
    fn from_args() -> Self {
        Self(
            std::env::args()
                .skip(1)
                .filter(|a| !a.starts_with('-'))
                .collect(),
        )
    }

    /// Whether `value` of the group `choices` is wanted.
    fn picks(&self, choices: &[&str], value: &str) -> bool {
        let given: Vec<&str> = self
            .0
            .iter()
            .map(String::as_str)
            .filter(|a| choices.contains(a))
            .collect();
        given.is_empty() || given.contains(&value)
    }
}

/// What every layout's runs share.
struct Bench {
    client: reqwest::Client,
    mock_pid: u32,
    mock_url: String,
    direct: Target,
    selection: Selection,
}

/// One row of the table: direct and through keyward.
struct Row {
    layout: Layout,
    mode: &'static str,
    concurrency: usize,
    outcomes: [Outcome; 2],
}

/// Runs the selected rows in `layout` with a keyward of its own; the rows
/// and a line on keyward's memory, or `None` if the layout was skipped.
async fn run_layout(bench: &Bench, layout: Layout, cores: Cores) -> Option<(Vec<Row>, String)> {
    let keyward = start_keyward(&bench.mock_url, cores.keyward.as_deref()).await;
    let through = Target {
        url: keyward.base.clone(),
        key: premium_token(&keyward.base).await,
    };
    let pid = keyward.child.id();
    let (_, startup_peak) = memory_mib(pid);
    // From here the peak counts the gateway runs only: start-up and signup
    // hash passwords with argon2id, which briefly takes 19 MiB each time.
    let peak_reset = std::fs::write(format!("/proc/{pid}/clear_refs"), "5").is_ok();
    if !(pin(std::process::id(), &cores.callers) && pin(bench.mock_pid, &cores.callers)) {
        println!("\n{}: skipped (taskset failed)", layout.name());
        return None;
    }
    let pids = [
        "self".to_owned(),
        bench.mock_pid.to_string(),
        pid.to_string(),
    ];
    println!("\n{}: {}", layout.name(), layout.describe());
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
    let mut rows = Vec::new();
    for (mode, stream) in [("json", false), ("sse", true)] {
        let body = json!({
            "model": "claude-haiku-4-5", "max_tokens": 256, "stream": stream,
            "messages": [{ "role": "user", "content": "Hello there, how are you today?" }],
        });
        for concurrency in [1, 16, 64] {
            let selection = &bench.selection;
            if !selection.picks(&["json", "sse"], mode)
                || !selection.picks(&["1", "16", "64"], &concurrency.to_string())
            {
                continue;
            }
            let mut pooled = [Sample::default(), Sample::default()];
            for _ in 0..ROUNDS {
                for (i, target) in [&bench.direct, &through].into_iter().enumerate() {
                    pooled[i].absorb(load(&bench.client, target, &body, concurrency, &pids).await);
                }
            }
            let row = Row {
                layout,
                mode,
                concurrency,
                outcomes: pooled.map(Outcome::from),
            };
            print_row(&row);
            rows.push(row);
        }
    }
    let (rss, peak) = memory_mib(pid);
    let memory = if peak_reset {
        format!(
            "{}: keyward RSS {rss:.1} MiB after the runs, peak during them {peak:.1} MiB (start-up and signup peak {startup_peak:.1} MiB)",
            layout.name()
        )
    } else {
        format!(
            "{}: keyward RSS {rss:.1} MiB after the runs, peak {peak:.1} MiB",
            layout.name()
        )
    };
    Some((rows, memory))
}

fn print_row(row: &Row) {
    for (path, outcome) in ["direct", "keyward"].iter().zip(&row.outcomes) {
        let [load, mock, kw] = outcome.cpu_us;
        println!(
            "{:<6} {:>3}  {path:<8} {:>9.0} {:>9.3} {:>9.3} {:>10.3} {:>6}   {load:>8.1} {mock:>6.1} {kw:>6.1}",
            row.mode,
            row.concurrency,
            outcome.rps,
            ms(outcome.p50),
            ms(outcome.p99),
            ms(outcome.ttfb_p50),
            outcome.errors
        );
    }
    let _ = std::io::stdout().flush();
}

#[tokio::main]
async fn main() {
    // Counted before any pinning: once this process is pinned, the
    // standard library counts only the cores it may still use.
    let machine_cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let (mut mock, mock_url) = start_mock(&[PLATFORM_KEY, USER_KEY]);
    let bench = Bench {
        client: reqwest::Client::builder()
            .pool_max_idle_per_host(128)
            .tcp_nodelay(true)
            .build()
            .expect("client"),
        mock_pid: mock.id(),
        direct: Target {
            url: mock_url.clone(),
            key: USER_KEY.into(),
        },
        mock_url,
        selection: Selection::from_args(),
    };
    println!(
        "gateway load: {ROUNDS} alternating rounds of {} s per path after {} ms warm-up; mock upstream with no delay; keyward release build, SQLite, premium user",
        RUN.as_secs(),
        WARMUP.as_millis()
    );
    let mut rows = Vec::new();
    let mut memory = Vec::new();
    for layout in [Layout::Dedicated, Layout::Shared] {
        if !bench
            .selection
            .picks(&["dedicated", "shared"], layout.name())
        {
            continue;
        }
        let Some(cores) = layout.cores(machine_cores) else {
            println!("\n{}: skipped (needs two cores and taskset)", layout.name());
            continue;
        };
        if let Some((layout_rows, layout_memory)) = run_layout(&bench, layout, cores).await {
            rows.extend(layout_rows);
            memory.push(layout_memory);
        }
    }
    println!();
    for row in &rows {
        let [direct, keyward] = &row.outcomes;
        println!(
            "{:<9} {:<4} c={:<3} keyward throughput {:>5.1} % of direct, p99 added {:>7.3} ms",
            row.layout.name(),
            row.mode,
            row.concurrency,
            keyward.rps / direct.rps * 100.0,
            ms(keyward.p99) - ms(direct.p99)
        );
    }
    for line in memory {
        println!("{line}");
    }
    let _ = mock.kill();
    let _ = mock.wait();
}
