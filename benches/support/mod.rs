//! What the benchmarks share: starting the mock upstream and keyward,
//! accounts, load, and percentiles.
// Each benchmark uses only some of these helpers.
#![allow(dead_code)]

pub mod keyward;
pub mod load;

use std::{
    io::{BufRead, BufReader},
    process::{Child, Command, Stdio},
    time::Duration,
};

/// The release mock upstream, accepting `keys`, with no artificial delay.
pub fn start_mock(keys: &[&str]) -> (Child, String) {
    let bin = std::env::var("MOCK_LLM_BIN").unwrap_or_else(|_| "target/release/mock_llm".into());
    let mut child = Command::new(&bin)
        .args([
            "--addr",
            "127.0.0.1:0",
            "--delay-ms",
            "0",
            "--keys",
            &keys.join(","),
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("start {bin}: {e} (build it with `cargo build --release --features ssr --bins`)")
        });
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("mock address");
    let url = line.trim().rsplit(' ').next().expect("address").to_owned();
    (child, url)
}

/// The `p` quantile (0..=1) of sorted samples.
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index]
}

pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// The rows the command line asks for: `-- json 16` runs only rows that
/// match in every group named (e.g. to profile one of them); nothing given
/// in a group means all of it.
pub struct Selection(Vec<String>);

impl Selection {
    pub fn from_args() -> Self {
        Self(
            std::env::args()
                .skip(1)
                .filter(|a| !a.starts_with('-'))
                .collect(),
        )
    }

    /// Whether `value` of the group `choices` is wanted.
    pub fn picks(&self, choices: &[&str], value: &str) -> bool {
        let given: Vec<&str> = self
            .0
            .iter()
            .map(String::as_str)
            .filter(|a| choices.contains(a))
            .collect();
        given.is_empty() || given.contains(&value)
    }
}
