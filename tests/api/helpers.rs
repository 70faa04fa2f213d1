//! `spawn_app()`: the real server on port 0 with a fresh database per test —
//! a new SQLite file, or a new schema on `KEYWARD_TEST_POSTGRES_URL`.

use std::path::PathBuf;

use clap::Parser;
use keyward::server::{
    config::Cli,
    db::{self, Db},
    startup::Application,
};
use reqwest::{header, redirect, Client, Response};
use tokio::{net::TcpListener, sync::oneshot};

/// A fixed master key for tests (base64 of 32 bytes).
pub const TEST_MASTER_KEY: &str = "a2V5d2FyZC10ZXN0LW1hc3Rlci1rZXktMzItYnl0ZXM=";
pub const PASSWORD: &str = "correct horse battery staple";

/// Which database a test runs on; every test runs on both when Postgres is configured.
#[derive(Debug, Clone)]
pub enum TestDb {
    Sqlite,
    Postgres(String),
}

impl TestDb {
    /// The Postgres server `KEYWARD_TEST_POSTGRES_URL` names. A Postgres
    /// test without it fails rather than passing unrun: leave those tests
    /// out with `--skip on_postgres` (what `make test` does then).
    pub fn postgres() -> Self {
        match std::env::var("KEYWARD_TEST_POSTGRES_URL") {
            Ok(url) if !url.is_empty() => TestDb::Postgres(url),
            _ => panic!(
                "KEYWARD_TEST_POSTGRES_URL is not set: set it to a PostgreSQL server, \
                 or leave the Postgres tests out with `cargo test -- --skip on_postgres`"
            ),
        }
    }

    /// A URL to a database nobody else uses.
    pub async fn fresh_url(&self) -> String {
        let unique = format!("{:016x}", rand_u64());
        match self {
            TestDb::Sqlite => {
                let dir = std::env::temp_dir().join("keyward-tests");
                std::fs::create_dir_all(&dir).expect("create temp dir");
                format!(
                    "sqlite:{}?mode=rwc",
                    dir.join(format!("{unique}.db")).display()
                )
            }
            TestDb::Postgres(base) => {
                let schema = format!("kw_test_{unique}");
                let admin = db::connect(base)
                    .await
                    .expect("connect to KEYWARD_TEST_POSTGRES_URL");
                sqlx::query(&format!("CREATE SCHEMA {schema}"))
                    .execute(&admin)
                    .await
                    .expect("create schema");
                admin.close().await;
                let sep = if base.contains('?') { '&' } else { '?' };
                format!("{base}{sep}options[search_path]={schema}")
            }
        }
    }
}

fn rand_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos(),
    );
    hasher.finish()
}

/// Generates one `#[tokio::test]` per backend for each listed `async fn name(db: TestDb)`.
#[macro_export]
macro_rules! db_tests {
    ($($name:ident),+ $(,)?) => {
        mod on_sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::helpers::TestDb::Sqlite).await;
                }
            )+
        }
        mod on_postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::helpers::TestDb::postgres()).await;
                }
            )+
        }
    };
}

pub struct TestApp {
    pub base: String,
    pub db: Db,
    pub database_url: String,
    /// A browser-like client: keeps cookies, sends our Origin, does not follow redirects.
    pub client: Client,
    /// The clock limits use; tests move it to cross window edges.
    pub clock: std::sync::Arc<keyward::server::clock::Clock>,
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<()>>,
}

pub async fn spawn_app(db: TestDb) -> TestApp {
    spawn_app_with(db, &[]).await
}

pub async fn spawn_app_with(db: TestDb, extra_args: &[&str]) -> TestApp {
    let url = db.fresh_url().await;
    spawn_app_on(&url, extra_args).await
}

/// Starts keyward on an existing database (used to restart on the same data).
pub async fn spawn_app_on(database_url: &str, extra_args: &[&str]) -> TestApp {
    crate::logs::capture_logs();
    let mut args = vec![
        "keyward".to_owned(),
        "--database-url".into(),
        database_url.to_owned(),
    ];
    // Defaults a test may override by passing the same flag (clap keeps the last).
    if !extra_args.contains(&"--master-key") {
        args.extend(["--master-key".into(), TEST_MASTER_KEY.into()]);
    }
    if !extra_args.contains(&"--anthropic-base-url") {
        args.extend(["--anthropic-base-url".into(), "http://127.0.0.1:9".into()]);
    }
    args.extend(extra_args.iter().map(|a| a.to_string()));
    let config = Cli::try_parse_from(args)
        .expect("test arguments parse")
        .config;
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind port 0");
    let options = leptos::config::LeptosOptions::builder()
        .output_name("keyward")
        .site_root(site_root())
        .build();
    let app = Application::build_with_listener(config, options, listener)
        .await
        .expect("app builds");
    let addr = app.local_addr();
    let db = app.state().db.clone();
    let clock = app.state().clock.clone();
    let (tx, rx) = oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        app.run_until(async {
            let _ = rx.await;
        })
        .await;
    });
    let base = format!("http://{addr}");
    TestApp {
        client: browser_client(&base),
        clock,
        base,
        db,
        database_url: database_url.to_owned(),
        shutdown: Some(tx),
        server: Some(server),
    }
}

/// The debug build's assets (`make test` builds them there), unless
/// `LEPTOS_SITE_ROOT` says otherwise.
fn site_root() -> String {
    let root = std::env::var("LEPTOS_SITE_ROOT").unwrap_or_else(|_| "target/site-debug".into());
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join(root)
        .display()
        .to_string()
}

/// A client that behaves like a browser tab on the app's own origin.
pub fn browser_client(base: &str) -> Client {
    let mut headers = header::HeaderMap::new();
    headers.insert(header::ORIGIN, base.parse().unwrap());
    Client::builder()
        .cookie_store(true)
        .redirect(redirect::Policy::none())
        // A stalled response (streaming SSR has been seen to stall under heavy
        // test parallelism) fails its test instead of holding the suite.
        .timeout(std::time::Duration::from_secs(120))
        .default_headers(headers)
        .build()
        .unwrap()
}

impl TestApp {
    /// The SQLite file behind this app (None on Postgres).
    pub fn sqlite_path(&self) -> Option<PathBuf> {
        let rest = self.database_url.strip_prefix("sqlite:")?;
        Some(PathBuf::from(rest.split('?').next()?))
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Stops the server gracefully and waits until it has (bounded, so a
    /// stuck shutdown fails the test instead of hanging the suite).
    pub async fn stop(mut self) -> String {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(server) = self.server.take() {
            tokio::time::timeout(std::time::Duration::from_secs(20), server)
                .await
                .expect("server shut down within 20 s")
                .expect("server task ends cleanly");
        }
        tokio::time::timeout(std::time::Duration::from_secs(20), self.db.close())
            .await
            .expect("database pool closed within 20 s");
        self.database_url.clone()
    }

    /// Calls a server function the way the hydrated app does (form body, JSON answer).
    pub async fn call_with(
        &self,
        client: &Client,
        endpoint: &str,
        form: &[(&str, &str)],
    ) -> Response {
        client
            .post(self.url(&format!("/api/{endpoint}")))
            .header(header::ACCEPT, "application/json")
            .form(form)
            .send()
            .await
            .expect("request sent")
    }

    pub async fn call(&self, endpoint: &str, form: &[(&str, &str)]) -> Response {
        self.call_with(&self.client, endpoint, form).await
    }

    pub async fn signup(&self, email: &str, password: &str) -> Response {
        self.call("signup", &[("email", email), ("password", password)])
            .await
    }

    pub async fn login(&self, email: &str, password: &str) -> Response {
        self.call("login", &[("email", email), ("password", password)])
            .await
    }

    pub async fn login_with(&self, client: &Client, email: &str, password: &str) -> Response {
        self.call_with(client, "login", &[("email", email), ("password", password)])
            .await
    }

    pub async fn get(&self, path: &str) -> Response {
        self.client
            .get(self.url(path))
            .send()
            .await
            .expect("request sent")
    }

    pub async fn get_with(&self, client: &Client, path: &str) -> Response {
        client
            .get(self.url(path))
            .send()
            .await
            .expect("request sent")
    }

    pub async fn logout_with(&self, client: &Client) -> Response {
        client
            .post(self.url("/logout"))
            .send()
            .await
            .expect("request sent")
    }

    /// A second, independent browser on the same server.
    pub fn new_client(&self) -> Client {
        browser_client(&self.base)
    }
}

/// Asserts a redirect to `to`.
pub fn assert_redirect(response: &Response, to: &str) {
    assert!(
        response.status().is_redirection(),
        "expected a redirect, got {}",
        response.status()
    );
    assert_eq!(response.headers()[header::LOCATION], to);
}
