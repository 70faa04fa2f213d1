//! keyward's release binary as a process of its own, and the accounts the
//! benchmarks call it with.

use std::{
    process::{Child, Command, Stdio},
    sync::Arc,
    time::Duration,
};

use reqwest::cookie::{CookieStore, Jar};

use serde_json::Value;

use super::load::free_port;

pub const PLATFORM_KEY: &str = "sk-ant-api03-bench-mock-platform-key-BNCH";
pub const USER_KEY: &str = "sk-ant-api03-bench-mock-user-key-0001-BNCH";
const PASSWORD: &str = "correct horse battery staple";

pub struct Keyward {
    pub child: Child,
    pub base: String,
    dir: std::path::PathBuf,
}

impl Drop for Keyward {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// How to start one keyward.
#[derive(Default)]
pub struct Start<'a> {
    /// A `taskset` core list; all cores when `None`. Pinned from its start,
    /// keyward sizes its runtime to the cores it has, as it would in a
    /// container limited to them.
    pub cores: Option<&'a str>,
    /// A database; a fresh SQLite file when `None`.
    pub database_url: Option<String>,
    /// More environment (limits, say).
    pub env: Vec<(&'a str, String)>,
}

/// Starts keyward in front of the mock at `mock_url` and waits until it
/// answers `/healthz`.
pub async fn start_keyward(mock_url: &str, start: Start<'_>) -> Keyward {
    let dir = std::env::temp_dir().join(format!(
        "keyward-bench-{}-{}",
        std::process::id(),
        free_port()
    ));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let database_url = start
        .database_url
        .unwrap_or_else(|| format!("sqlite:{}?mode=rwc", dir.join("bench.db").display()));
    let addr = format!("127.0.0.1:{}", free_port());
    let bin = std::env::var("KEYWARD_BIN").unwrap_or_else(|_| "target/release/keyward".into());
    let mut command = match start.cores {
        Some(cores) => {
            let mut taskset = Command::new("taskset");
            taskset.args(["--cpu-list", cores, &bin]);
            taskset
        }
        None => Command::new(&bin),
    };
    command
        .arg("serve")
        .env("DATABASE_URL", &database_url)
        .env("LEPTOS_SITE_ADDR", &addr)
        .env("ANTHROPIC_BASE_URL", mock_url)
        .env("ANTHROPIC_API_KEY", PLATFORM_KEY)
        .env(
            "KEYWARD_MASTER_KEY",
            "YmVuY2gtbWFzdGVyLWtleS0zMi1ieXRlcy1sb25nISE=",
        )
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null());
    for (name, value) in &start.env {
        command.env(name, value);
    }
    let child = command
        .spawn()
        .unwrap_or_else(|e| panic!("start {bin}: {e} (build it with `make build`)"));
    let keyward = Keyward {
        child,
        base: format!("http://{addr}"),
        dir,
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

/// A signed-up user, as the browser that signed up.
pub struct Account {
    base: String,
    browser: reqwest::Client,
    cookies: Arc<Jar>,
}

impl Account {
    /// Signs up `email` (the first account on a database is its admin).
    pub async fn sign_up(base: &str, email: &str) -> Self {
        let cookies = Arc::new(Jar::default());
        let account = Self {
            base: base.to_owned(),
            browser: reqwest::Client::builder()
                .cookie_provider(cookies.clone())
                .build()
                .expect("client"),
            cookies,
        };
        account
            .call("signup", &[("email", email), ("password", PASSWORD)])
            .await;
        account
    }

    /// Calls a server function; panics unless it succeeds.
    pub async fn call(&self, endpoint: &str, form: &[(&str, &str)]) -> Value {
        let answer = self
            .browser
            .post(format!("{}/api/{endpoint}", self.base))
            .header("accept", "application/json")
            .header("origin", &self.base)
            .form(form)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{endpoint}: {e}"));
        let status = answer.status();
        let text = answer.text().await.unwrap_or_default();
        assert!(status.is_success(), "{endpoint}: {status} {text}");
        serde_json::from_str(&text).unwrap_or(Value::Null)
    }

    /// The `Cookie` header the browser sends: its session, for another
    /// client to act as this user.
    pub fn cookie_header(&self) -> String {
        let url = self.base.parse().expect("base url");
        self.cookies
            .cookies(&url)
            .and_then(|value| value.to_str().ok().map(str::to_owned))
            .expect("signed in: a session cookie")
    }

    /// One chat turn, as the chat page sends it; returns the conversation's
    /// id once the reply has streamed to its end.
    pub async fn chat(&self, conversation_id: Option<i64>, text: &str) -> i64 {
        let answer = self
            .browser
            .post(format!("{}/chat/send", self.base))
            .header("origin", &self.base)
            .json(&serde_json::json!({
                "conversation_id": conversation_id,
                "text": text,
                "model": "claude-haiku-4-5",
            }))
            .send()
            .await
            .expect("chat turn sent");
        assert!(
            answer.status().is_success(),
            "chat turn: {}",
            answer.status()
        );
        let events = answer.text().await.expect("chat turn streamed");
        events
            .lines()
            .filter_map(|line| serde_json::from_str::<Value>(line).ok())
            .find_map(|event| event["conversation_id"].as_i64())
            .expect("the turn names its conversation")
    }

    /// Saves the user's own Anthropic key (the mock's user key).
    pub async fn save_own_key(&self) {
        self.call("keys/save", &[("api_key", USER_KEY)]).await;
    }

    /// A new personal token for the gateway.
    pub async fn token(&self) -> String {
        let created = self.call("tokens/create", &[("name", "bench")]).await;
        created["token"].as_str().expect("token").to_owned()
    }
}

/// Signs up, saves the user's own key and creates a personal token.
pub async fn premium_token(base: &str) -> String {
    let account = Account::sign_up(base, "bench@example.com").await;
    account.save_own_key().await;
    account.token().await
}
