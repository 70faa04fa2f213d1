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
    process::{Command, Stdio},
};

use serde_json::json;
use support::{
    keyward::{premium_token, start_keyward, Start, PLATFORM_KEY, USER_KEY},
    load::{load, load_client, memory_mib, Outcome, Sample, Target, RUN, WARMUP},
    ms, start_mock, Selection,
};

const ROUNDS: usize = 3;

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
    let start = Start {
        cores: cores.keyward.as_deref(),
        ..Start::default()
    };
    let keyward = start_keyward(&bench.mock_url, start).await;
    let through = Target {
        url: keyward.base.clone(),
        keys: vec![premium_token(&keyward.base).await],
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
        client: load_client(),
        mock_pid: mock.id(),
        direct: Target {
            url: mock_url.clone(),
            keys: vec![USER_KEY.into()],
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
