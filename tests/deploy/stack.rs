//! One production stack per test, built from the files in `deploy/`.

use std::{
    io::{BufRead, BufReader, Write},
    net::{SocketAddr, TcpListener},
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Stdio},
    time::{Duration, Instant},
};

use reqwest::{header, Client, StatusCode};
use serde_json::Value;

use crate::gate::Gate;

pub const PASSWORD: &str = "correct horse battery staple";
const MASTER_KEY: &str = "a2V5d2FyZC10ZXN0LW1hc3Rlci1rZXktMzItYnl0ZXM=";
pub const PLATFORM_KEY: &str = "sk-ant-api03-deploy-test-platform-key-0000-PLAT";
pub const MODEL: &str = "claude-haiku-4-5";

/// What differs between tests: the free plan's limits.
#[derive(Clone, Copy)]
pub struct Plan {
    pub requests_per_day: u64,
    pub requests_per_minute: u64,
}

impl Plan {
    /// Limits no test reaches.
    pub const ROOMY: Plan = Plan {
        requests_per_day: 1_000_000,
        requests_per_minute: 1_000_000,
    };
}

pub struct Stack {
    /// `https://127.0.0.1:<port>`: nginx, as browsers reach it.
    pub https: String,
    /// `http://127.0.0.1:<port>`: nginx's plain-HTTP server (redirects).
    pub http: String,
    pub database: Database,
    pub gate: Gate,
    pub mock: Mock,
    pub instances: Vec<Instance>,
    ca_pem: Vec<u8>,
    _nginx: Nginx,
    dir: PathBuf,
}

impl Stack {
    pub async fn start(name: &str, plan: Plan) -> Stack {
        let dir =
            std::env::temp_dir().join(format!("keyward-deploy-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let database = Database::create(name);
        let gate = Gate::open_to(database.server).await;
        let mock = Mock::start();
        database.migrate();
        let master_key = dir.join("master.key");
        write_private(&master_key, MASTER_KEY.as_bytes());
        let env = instance_env(&database.app_url(gate.port), &mock.url, &master_key, plan);
        let mut instances = Vec::new();
        for index in 0..2 {
            let instance = Instance::new(format!("{name}-{index}"), free_port(), env.clone());
            instances.push(instance);
        }
        for instance in &mut instances {
            instance.start().await;
        }
        let tls = Tls::make(&dir);
        let (https_port, http_port) = (free_port(), free_port());
        let ports = [instances[0].port, instances[1].port];
        let nginx = Nginx::start(&dir, &tls, https_port, http_port, ports);
        Stack {
            https: format!("https://127.0.0.1:{https_port}"),
            http: format!("http://127.0.0.1:{http_port}"),
            database,
            gate,
            mock,
            instances,
            ca_pem: std::fs::read(&tls.ca).unwrap(),
            _nginx: nginx,
            dir,
        }
    }

    /// A browser-like client of the https site: trusts this run's
    /// certificate authority, keeps cookies, sends the site's Origin and
    /// does not follow redirects.
    pub fn browser(&self) -> Client {
        let mut headers = header::HeaderMap::new();
        headers.insert(header::ORIGIN, self.https.parse().unwrap());
        self.client_builder()
            .cookie_store(true)
            .default_headers(headers)
            .build()
            .unwrap()
    }

    /// A client for the gateway (no cookies).
    pub fn api(&self) -> Client {
        self.client_builder().build().unwrap()
    }

    fn client_builder(&self) -> reqwest::ClientBuilder {
        Client::builder()
            .add_root_certificate(reqwest::Certificate::from_pem(&self.ca_pem).unwrap())
            .tls_built_in_root_certs(false)
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(60))
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.https)
    }

    /// Signs `email` up through nginx on `client`; the session cookie stays in it.
    pub async fn sign_up(&self, client: &Client, email: &str) {
        let answer = client
            .post(self.url("/api/signup"))
            .form(&[("email", email), ("password", PASSWORD)])
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), StatusCode::OK, "signup");
    }

    /// A personal token for `email`, issued with the CLI as an operator would.
    pub fn token_for(&self, email: &str) -> String {
        let out = keyward(
            &self.database.app_url(self.gate.port),
            &["issue-token", "--email", email, "--name", "deploy-test"],
            None,
        );
        assert!(
            out.status.success(),
            "issue-token: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    }

    /// The database as its owner sees it (for the books).
    pub async fn owner_db(&self) -> sqlx::PgPool {
        sqlx::PgPool::connect(&self.database.owner_url())
            .await
            .unwrap()
    }

    /// `email`'s ledger rows, once there are `expected` of them or after
    /// 10 s: rows are written in batches, a moment after their calls end.
    pub async fn ledger_rows_reach(&self, email: &str, expected: usize) -> usize {
        let db = self.owner_db().await;
        let count = || async {
            let rows: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM usage_ledger l JOIN users u ON u.id = l.user_id WHERE u.email = $1",
            )
            .bind(email)
            .fetch_one(&db)
            .await
            .unwrap();
            rows as usize
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while count().await < expected && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // A moment more, so a row written twice would show.
        tokio::time::sleep(Duration::from_millis(300)).await;
        count().await
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// A free loopback port, released for a server to take.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn write_private(path: &Path, contents: &[u8]) {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .and_then(|mut file| file.write_all(contents))
        .unwrap();
}

fn repo_file(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// Runs `keyward <args>` on `database_url`, as an operator would.
pub fn keyward(database_url: &str, args: &[&str], stdin: Option<&str>) -> std::process::Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_keyward"))
        .args(args)
        .env("DATABASE_URL", database_url)
        .env("KEYWARD_MASTER_KEY", MASTER_KEY)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run keyward");
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
    }
    drop(child.stdin.take());
    child.wait_with_output().unwrap()
}

/// The instances' environment: `deploy/keyward.env` as shipped, with this
/// run's database, upstream and free plan in place of the examples, and
/// what the systemd unit adds.
fn instance_env(
    database_url: &str,
    mock_url: &str,
    master_key: &Path,
    plan: Plan,
) -> Vec<(String, String)> {
    let template = std::fs::read_to_string(repo_file("deploy/keyward.env")).unwrap();
    let mut env: Vec<(String, String)> = template
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(|line| {
            let (name, value) = line.split_once('=').expect("NAME=value lines");
            (name.to_owned(), value.to_owned())
        })
        .collect();
    let mut set = |name: &str, value: String| {
        env.retain(|(known, _)| known != name);
        env.push((name.to_owned(), value));
    };
    set("DATABASE_URL", database_url.to_owned());
    set("ANTHROPIC_API_KEY", PLATFORM_KEY.to_owned());
    set("ANTHROPIC_BASE_URL", mock_url.to_owned());
    set("KEYWARD_MASTER_KEY_FILE", master_key.display().to_string());
    set(
        "KEYWARD_FREE_REQUESTS_PER_DAY",
        plan.requests_per_day.to_string(),
    );
    set(
        "KEYWARD_FREE_REQUESTS_PER_MINUTE",
        plan.requests_per_minute.to_string(),
    );
    set("KEYWARD_FREE_TOKENS_PER_DAY", "1000000000".to_owned());
    set("KEYWARD_SHUTDOWN_GRACE_SECS", "5".to_owned());
    set("RUST_LOG", "warn".to_owned());
    let site = std::env::var("LEPTOS_SITE_ROOT").unwrap_or_else(|_| "target/site-debug".into());
    set("LEPTOS_SITE_ROOT", repo_file(&site).display().to_string());
    env
}

/// One `keyward serve`, as `keyward@.service` runs it.
pub struct Instance {
    pub name: String,
    pub port: u16,
    env: Vec<(String, String)>,
    child: Option<Child>,
}

impl Instance {
    fn new(name: String, port: u16, env: Vec<(String, String)>) -> Instance {
        Instance {
            name,
            port,
            env,
            child: None,
        }
    }

    pub fn direct(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub async fn start(&mut self) {
        let child = Command::new(env!("CARGO_BIN_EXE_keyward"))
            .arg("serve")
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .envs(self.env.iter().map(|(name, value)| (name, value)))
            .env("LEPTOS_SITE_ADDR", format!("127.0.0.1:{}", self.port))
            .env("KEYWARD_INSTANCE_ID", &self.name)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start keyward serve");
        self.child = Some(child);
        self.wait_until_healthy(Duration::from_secs(30)).await;
    }

    /// Waits until `/healthz` answers 200, failing after `limit`.
    pub async fn wait_until_healthy(&mut self, limit: Duration) {
        let deadline = Instant::now() + limit;
        loop {
            if let Ok(answer) = reqwest::get(self.direct("/healthz")).await {
                if answer.status() == StatusCode::OK {
                    return;
                }
            }
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|child| child.try_wait().unwrap())
            {
                panic!("{} exited before it was healthy: {status}", self.name);
            }
            assert!(
                Instant::now() < deadline,
                "{} not healthy after {limit:?}",
                self.name
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// SIGTERM, as `systemctl stop` sends it; waits for the exit.
    pub async fn stop(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("a running instance");
        let sent = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(sent.success());
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "{} did not exit after SIGTERM",
                self.name
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The sum of the `/metrics` samples whose line starts with `prefix`.
    pub async fn metric(&self, prefix: &str) -> f64 {
        let text = reqwest::get(self.direct("/metrics"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        text.lines()
            .filter(|line| line.starts_with(prefix))
            .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A database and its two roles, made by `deploy/postgres/setup.sql` on the
/// server `KEYWARD_TEST_POSTGRES_URL` names; dropped afterwards.
pub struct Database {
    admin_url: String,
    pub name: String,
    owner: String,
    app: String,
    pub server: SocketAddr,
}

const ROLE_PASSWORD: &str = "deploy-test-password";

impl Database {
    pub fn create(test: &str) -> Database {
        let admin_url = std::env::var("KEYWARD_TEST_POSTGRES_URL").expect(
            "the deploy test needs a PostgreSQL superuser in KEYWARD_TEST_POSTGRES_URL \
             (.ci/run sets it when PostgreSQL answers)",
        );
        let unique = format!("kwdeploy_{}_{}", test.replace('-', "_"), std::process::id());
        let database = Database {
            server: server_address(&admin_url),
            admin_url,
            name: unique.clone(),
            owner: format!("{unique}_owner"),
            app: format!("{unique}_app"),
        };
        database.drop_all();
        run_script(
            &database.admin_url,
            "deploy/postgres/setup.sql",
            &[
                ("database", &database.name),
                ("owner", &database.owner),
                ("app", &database.app),
                ("owner_password", ROLE_PASSWORD),
                ("app_password", ROLE_PASSWORD),
            ],
        );
        database
    }

    /// `keyward migrate` as the owner, then `after-migrate.sql`: the
    /// upgrade steps of the README.
    pub fn migrate(&self) {
        let out = keyward(&self.owner_url(), &["migrate"], None);
        assert!(
            out.status.success(),
            "keyward migrate as the owner role: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        run_script(
            &self.owner_url(),
            "deploy/postgres/after-migrate.sql",
            &[("app", &self.app)],
        );
    }

    pub fn owner_url(&self) -> String {
        format!(
            "postgres://{}:{ROLE_PASSWORD}@{}/{}",
            self.owner, self.server, self.name
        )
    }

    /// The app role's URL through `port` (the gate in front of the server).
    pub fn app_url(&self, port: u16) -> String {
        format!(
            "postgres://{}:{ROLE_PASSWORD}@127.0.0.1:{port}/{}",
            self.app, self.name
        )
    }

    fn drop_all(&self) {
        for statement in [
            format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
            format!("DROP ROLE IF EXISTS {}", self.app),
            format!("DROP ROLE IF EXISTS {}", self.owner),
        ] {
            let _ = Command::new("psql")
                .arg(&self.admin_url)
                .args(["-X", "-q", "-c", &statement])
                .stderr(Stdio::null())
                .status();
        }
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        self.drop_all();
    }
}

/// Runs one of the shipped SQL scripts with psql, as the README says to,
/// with `variables` set (`-v name=value`).
fn run_script(url: &str, script: &str, variables: &[(&str, &str)]) {
    let mut psql = Command::new("psql");
    psql.arg(url).args(["-X", "-q"]);
    for (name, value) in variables {
        psql.arg("-v").arg(format!("{name}={value}"));
    }
    let out = psql
        .arg("-f")
        .arg(repo_file(script))
        .output()
        .expect("run psql");
    assert!(
        out.status.success(),
        "{script}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn server_address(url: &str) -> SocketAddr {
    let parsed = url::Url::parse(url).expect("a postgres:// URL");
    let host = parsed.host_str().unwrap_or("127.0.0.1");
    let host = if host == "localhost" {
        "127.0.0.1"
    } else {
        host
    };
    format!("{host}:{}", parsed.port().unwrap_or(5432))
        .parse()
        .expect("the Postgres server as an IP address and port")
}

/// The bundled mock Anthropic API.
pub struct Mock {
    pub url: String,
    child: Child,
}

impl Mock {
    fn start() -> Mock {
        let mut child = Command::new(env!("CARGO_BIN_EXE_mock_llm"))
            .args([
                "--addr",
                "127.0.0.1:0",
                "--delay-ms",
                "0",
                "--keys",
                PLATFORM_KEY,
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start mock_llm");
        let mut first_line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut first_line)
            .unwrap();
        let url = first_line.trim().rsplit(' ').next().unwrap().to_owned();
        Mock { url, child }
    }

    /// How many model calls reached the mock.
    pub async fn calls(&self) -> usize {
        let received: Vec<Value> = reqwest::get(format!("{}/_mock/requests", self.url))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        received
            .iter()
            .filter(|request| request["path"] == "/v1/messages")
            .count()
    }
}

impl Drop for Mock {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A certificate authority for the run and a certificate for 127.0.0.1.
struct Tls {
    ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
}

impl Tls {
    fn make(dir: &Path) -> Tls {
        let run = |args: &[&str]| {
            let out = Command::new("openssl")
                .args(args)
                .current_dir(dir)
                .output()
                .expect("run openssl");
            assert!(
                out.status.success(),
                "openssl {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        let ec = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
        ];
        run(&[
            &["req", "-x509"][..],
            &ec,
            &[
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
                "-days",
                "2",
                "-subj",
                "/CN=keyward deploy test CA",
            ],
        ]
        .concat());
        run(&[
            &["req"][..],
            &ec,
            &[
                "-keyout",
                "server.key",
                "-out",
                "server.csr",
                "-subj",
                "/CN=127.0.0.1",
            ],
        ]
        .concat());
        std::fs::write(
            dir.join("server.ext"),
            "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
        )
        .unwrap();
        run(&[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.pem",
            "-days",
            "2",
            "-extfile",
            "server.ext",
        ]);
        Tls {
            ca: dir.join("ca.pem"),
            cert: dir.join("server.pem"),
            key: dir.join("server.key"),
        }
    }
}

/// nginx with `deploy/nginx/keyward.conf`, rendered with this run's ports
/// and certificate, inside a minimal main configuration.
struct Nginx {
    child: Child,
}

impl Nginx {
    fn start(dir: &Path, tls: &Tls, https_port: u16, http_port: u16, instances: [u16; 2]) -> Nginx {
        let site = std::fs::read_to_string(repo_file("deploy/nginx/keyward.conf")).unwrap();
        let site = render_site(&site, tls, https_port, http_port, instances);
        std::fs::write(dir.join("keyward.conf"), site).unwrap();
        let d = dir.display();
        let main = format!(
            "user root;\nworker_processes 1;\npid {d}/nginx.pid;\nerror_log {d}/error.log warn;\n\
             events {{ worker_connections 4096; }}\n\
             http {{\n  access_log off;\n  client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n  \
             fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n  \
             include {d}/keyward.conf;\n}}\n"
        );
        std::fs::write(dir.join("nginx.conf"), main).unwrap();
        let child = Command::new("nginx")
            .arg("-p")
            .arg(dir)
            .arg("-e")
            .arg(dir.join("error.log"))
            .arg("-c")
            .arg(dir.join("nginx.conf"))
            .args(["-g", "daemon off;"])
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start nginx (make deploy-test installs it)");
        let nginx = Nginx { child };
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", https_port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "nginx did not listen: {}",
                std::fs::read_to_string(dir.join("error.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        nginx
    }
}

/// The shipped site with test ports, this run's certificate and no IPv6
/// listener (not every test machine has IPv6).
fn render_site(
    site: &str,
    tls: &Tls,
    https_port: u16,
    http_port: u16,
    instances: [u16; 2],
) -> String {
    let replaced = site
        .replace("127.0.0.1:3001", &format!("127.0.0.1:{}", instances[0]))
        .replace("127.0.0.1:3002", &format!("127.0.0.1:{}", instances[1]))
        .replace(
            "listen 443 ssl http2;",
            &format!("listen 127.0.0.1:{https_port} ssl http2;"),
        )
        .replace("listen 80;", &format!("listen 127.0.0.1:{http_port};"))
        .replace(
            "/etc/letsencrypt/live/keyward.example.com/fullchain.pem",
            &tls.cert.display().to_string(),
        )
        .replace(
            "/etc/letsencrypt/live/keyward.example.com/privkey.pem",
            &tls.key.display().to_string(),
        );
    let rendered: String = replaced
        .lines()
        .filter(|line| !line.trim_start().starts_with("listen [::]"))
        .map(|line| format!("{line}\n"))
        .collect();
    for (expected, what) in [
        (instances[0].to_string(), "the first instance's port"),
        (https_port.to_string(), "the https port"),
        (tls.cert.display().to_string(), "the certificate"),
    ] {
        assert!(
            rendered.contains(&expected),
            "the shipped nginx site no longer has {what} where the test expects it"
        );
    }
    rendered
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
