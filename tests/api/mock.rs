//! The project's mock Anthropic upstream, run as its real binary.

use std::{
    io::{BufRead, BufReader},
    process::{Child, Command, Stdio},
};

/// A key the mock accepts, for tests that need one.
pub const VALID_KEY: &str = "sk-ant-api03-test-valid-user-key-0001-WXYZ";
pub const SECOND_VALID_KEY: &str = "sk-ant-api03-test-valid-user-key-0002-QRST";
/// Known to the mock but answered with 403.
pub const FORBIDDEN_KEY: &str = "sk-ant-api03-test-forbidden-key-0003-LMNO";

pub struct MockUpstream {
    pub url: String,
    child: Child,
}

impl MockUpstream {
    pub fn start() -> Self {
        Self::start_with_keys(&[VALID_KEY, SECOND_VALID_KEY, FORBIDDEN_KEY])
    }

    pub fn start_with_keys(keys: &[&str]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_mock_llm"))
            .args([
                "--addr",
                "127.0.0.1:0",
                "--delay-ms",
                "0",
                "--keys",
                &keys.join(","),
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start mock_llm");
        let stdout = child.stdout.take().expect("mock stdout");
        let mut first_line = String::new();
        BufReader::new(stdout)
            .read_line(&mut first_line)
            .expect("mock prints its address");
        let url = first_line
            .trim()
            .rsplit(' ')
            .next()
            .expect("address on the first line")
            .to_owned();
        Self { url, child }
    }

    /// What the mock received so far.
    pub async fn received(&self) -> Vec<serde_json::Value> {
        reqwest::get(format!("{}/_mock/requests", self.url))
            .await
            .expect("mock answers")
            .json()
            .await
            .expect("mock request log is JSON")
    }

    pub async fn received_on(&self, path: &str) -> Vec<serde_json::Value> {
        self.received()
            .await
            .into_iter()
            .filter(|r| r["path"] == path)
            .collect()
    }
}

impl Drop for MockUpstream {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
