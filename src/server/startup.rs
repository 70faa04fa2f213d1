//! Building the application (state + router) and serving it.

use std::{
    net::SocketAddr,
    path::Path,
    sync::{Arc, OnceLock},
    time::Duration,
};

use axum::{
    extract::State,
    http::{header, HeaderValue, Request, StatusCode},
    middleware::{from_fn, from_fn_with_state},
    response::{IntoResponse, Redirect, Response},
    routing::{get, post},
    Extension, Json, Router,
};
use leptos::config::LeptosOptions;
use leptos_axum::{generate_route_list, AxumRouteListing, LeptosRoutes};
use secrecy::ExposeSecret;
use tokio::net::TcpListener;
use tower_http::{
    compression::CompressionLayer,
    limit::RequestBodyLimitLayer,
    request_id::{MakeRequestId, PropagateRequestIdLayer, RequestId, SetRequestIdLayer},
    services::ServeDir,
    trace::TraceLayer,
};
use tower_sessions::{cookie::SameSite, Expiry, Session, SessionManagerLayer};

use tokio_util::task::TaskTracker;

use super::{
    accounting::LedgerWriter,
    anthropic::{AnthropicClient, Transport},
    assets,
    auth::{self, LoginThrottle},
    calls::Instance,
    clock::Clock,
    config::Config,
    db::{self, sessions::DbSessionStore, Backend},
    metrics::{self, Metrics},
    security,
    state::{AppState, Shared},
    vault::{load_or_create_master_key_file, Keyring, MasterKey, MasterKeyError},
};
use crate::app::{shell, App};

/// Idle sessions end after a week without a request.
const IDLE_TIMEOUT: time::Duration = time::Duration::days(7);
const GENERATED_MASTER_KEY_PATH: &str = "data/master.key";
/// After the grace, how long calls cut in their own tasks get to record
/// themselves (they end at their next await; this only bounds a stuck one).
const CUT_CALLS_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("cannot open the database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("cannot migrate the database: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("{0}")]
    MasterKey(#[from] super::vault::MasterKeyError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// Opens the database named by the configuration, applies the migrations
/// it lacks, and makes sure the free plan exists (environment values
/// override stored ones).
pub async fn open_database(config: &Config) -> Result<db::Db, StartupError> {
    let db = db::connect(&config.database_url).await?;
    db::migrate_if_behind(&db, Backend::of_url(&config.database_url)).await?;
    db::plans::ensure_free_plan(&db, &config.free_plan, Clock::default().now_ms()).await?;
    Ok(db)
}

/// `keyward migrate`: like `open_database`, and also checks that the
/// migrations applied before are the ones this build carries.
pub async fn migrate_database(config: &Config) -> Result<(), StartupError> {
    let db = db::connect(&config.database_url).await?;
    db::migrate(&db, Backend::of_url(&config.database_url)).await?;
    db::plans::ensure_free_plan(&db, &config.free_plan, Clock::default().now_ms()).await?;
    db.close().await;
    Ok(())
}

/// Master keys from the environment or key file; generates `data/master.key`
/// (mode 0600) on first start when none is configured.
pub fn resolve_keyring(config: &Config) -> Result<Keyring, StartupError> {
    let named = |name| {
        move |source| MasterKeyError::Invalid {
            name,
            source: Box::new(source),
        }
    };
    let current = match (&config.master_key, &config.master_key_file) {
        (Some(key), _) => {
            MasterKey::from_base64(key.expose_secret()).map_err(named("KEYWARD_MASTER_KEY"))?
        }
        (None, Some(path)) => {
            MasterKey::read_file(path).map_err(named("KEYWARD_MASTER_KEY_FILE"))?
        }
        (None, None) => {
            let path = Path::new(GENERATED_MASTER_KEY_PATH);
            let (key, created) = load_or_create_master_key_file(path)?;
            if created {
                tracing::warn!(
                    path = %path.display(),
                    "generated a new master key; keep this file safe and back it up: \
                     losing it makes every stored Anthropic key unreadable. Set \
                     KEYWARD_MASTER_KEY or KEYWARD_MASTER_KEY_FILE to manage it yourself."
                );
            }
            key
        }
    };
    let old = match &config.old_master_keys {
        None => Vec::new(),
        Some(list) => list
            .expose_secret()
            .split(',')
            .map(str::trim)
            .filter(|part| !part.is_empty())
            .map(MasterKey::from_base64)
            .collect::<Result<_, _>>()
            .map_err(named("KEYWARD_OLD_MASTER_KEYS"))?,
    };
    Ok(Keyring { current, old })
}

/// A built application bound to a listener, ready to serve.
pub struct Application {
    listener: TcpListener,
    router: Router,
    state: AppState,
}

impl Application {
    /// Checks the configuration, opens the database, then binds `site_addr`.
    pub async fn build(
        config: Config,
        leptos_options: LeptosOptions,
    ) -> Result<Self, StartupError> {
        let keyring = resolve_keyring(&config)?;
        let addr = leptos_options.site_addr;
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| StartupError::Bind { addr, source })?;
        Self::assemble(config, keyring, leptos_options, listener).await
    }

    /// Like `build`, on a listener the caller bound (tests use port 0).
    pub async fn build_with_listener(
        config: Config,
        leptos_options: LeptosOptions,
        listener: TcpListener,
    ) -> Result<Self, StartupError> {
        let keyring = resolve_keyring(&config)?;
        Self::assemble(config, keyring, leptos_options, listener).await
    }

    async fn assemble(
        config: Config,
        keyring: Keyring,
        mut leptos_options: LeptosOptions,
        listener: TcpListener,
    ) -> Result<Self, StartupError> {
        tracing::info!(
            master_key_id = keyring.current.id(),
            old_keys = keyring.old.len(),
            "master keys loaded"
        );
        let db = open_database(&config).await?;
        if let Ok(addr) = listener.local_addr() {
            leptos_options.site_addr = addr;
        }
        // `/pkg` serves the whole pkg directory; pages link the current
        // build's own directory in it.
        let pkg_dir = leptos_options.site_pkg_dir.clone();
        match assets::linked_pkg_dir(&leptos_options.site_root, &pkg_dir) {
            Some(linked) => leptos_options.site_pkg_dir = linked.into(),
            None => tracing::warn!(
                "no published build under {}/{pkg_dir}: pages link unversioned assets, which browsers revalidate; run `keyward prepare-assets` after a build",
                leptos_options.site_root
            ),
        }
        let http = probe_client();
        let clock: Arc<Clock> = Arc::default();
        let instance = Arc::new(Instance::new(
            config.instance_id.as_deref(),
            leptos_options.site_addr,
            clock.clone(),
        ));
        let state = AppState::new(Shared {
            anthropic: AnthropicClient::new(Transport::new(), config.anthropic_base_url.clone()),
            leptos_options,
            keyring: Arc::new(keyring),
            db: db.clone(),
            config: Arc::new(config),
            metrics: Arc::new(Metrics::default()),
            login_throttle: LoginThrottle::default(),
            dummy_hash: auth::new_dummy_hash(),
            http,
            clock: clock.clone(),
            ledger: LedgerWriter::start(db.clone(), instance.clone(), clock),
            tasks: TaskTracker::new(),
            cuts: Arc::default(),
            instance,
            principals: Arc::default(),
            count_window: Arc::default(),
        });
        let router = router(state.clone(), &pkg_dir);
        Ok(Self {
            listener,
            router,
            state,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("bound listener has an address")
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until `shutdown` resolves; then lets calls in flight finish
    /// for up to the shutdown grace, cuts the rest (each records what it
    /// used), and writes every queued ledger row before returning.
    pub async fn run_until(self, shutdown: impl std::future::Future<Output = ()> + Send + 'static) {
        let state = self.state;
        state.instance.release_left_behind(&state.db).await;
        state.instance.clone().spawn_upkeep(state.db.clone());
        spawn_housekeeping(state.db.clone(), state.clock.clone());
        db::checkpoint_in_background(
            state.db.clone(),
            Backend::of_url(&state.config.database_url),
        );
        let addr = self
            .listener
            .local_addr()
            .expect("bound listener has an address");
        tracing::info!(%addr, instance = state.instance.name(), "keyward is listening");
        let grace = Duration::from_secs(state.config.shutdown_grace_secs);
        let deadline = super::serve::serve(self.listener, self.router, shutdown, grace).await;
        // Chat turns run in tasks of their own: the same deadline holds.
        state.tasks.close();
        if tokio::time::timeout_at(deadline, state.tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!("cutting the chat turns still running at shutdown");
            state.cuts.cut_all();
            if tokio::time::timeout(CUT_CALLS_TIMEOUT, state.tasks.wait())
                .await
                .is_err()
            {
                tracing::error!("chat turns did not end after being cut");
            }
        }
        state.ledger.stop().await;
    }
}

/// The largest body a page or server function accepts: a chat message of
/// 100,000 characters, form-encoded, fits with room to spare.
const PAGE_BODY_LIMIT: usize = 2 * 1024 * 1024;

/// Reads a page's or server function's body whole before it is handled,
/// within `timeout`: a client trickling its body in is answered 408 and
/// its connection freed instead of holding it (and a handler) for ever.
async fn buffer_page_body(
    State(timeout): State<Duration>,
    request: Request<axum::body::Body>,
    next: axum::middleware::Next,
) -> Response {
    let (parts, body) = request.into_parts();
    match tokio::time::timeout(timeout, axum::body::to_bytes(body, PAGE_BODY_LIMIT)).await {
        Ok(Ok(bytes)) => {
            next.run(Request::from_parts(parts, axum::body::Body::from(bytes)))
                .await
        }
        Ok(Err(_)) => (
            StatusCode::PAYLOAD_TOO_LARGE,
            "The request body is too large.",
        )
            .into_response(),
        Err(_) => (
            StatusCode::REQUEST_TIMEOUT,
            "The request body did not arrive in time.",
        )
            .into_response(),
    }
}

/// `pkg_dir`: the site's pkg directory, as configured (the pages' own
/// `site_pkg_dir` may name a version inside it).
fn router(state: AppState, pkg_dir: &str) -> Router {
    let leptos_options = state.leptos_options.clone();
    let routes = route_list();
    let session_layer = SessionManagerLayer::new(DbSessionStore::new(state.db.clone()))
        .with_name("keyward_session")
        .with_http_only(true)
        .with_same_site(SameSite::Lax)
        .with_secure(state.config.secure_cookies)
        .with_path("/")
        .with_expiry(Expiry::OnInactivity(IDLE_TIMEOUT));
    let secure_cookies = state.config.secure_cookies;
    let pkg_path = format!("/{pkg_dir}");
    let pkg_dir = Path::new(&*leptos_options.site_root).join(pkg_dir);

    Router::new()
        .route("/logout", post(logout))
        .route("/chat/send", post(super::chat::send_handler))
        .route("/admin/export.csv", get(super::admin::export::export_csv))
        .leptos_routes_with_context(&state, routes, || {}, {
            let options = leptos_options.clone();
            move || shell(options.clone())
        })
        .fallback(leptos_axum::file_and_error_handler::<AppState, _>(shell))
        .layer(from_fn_with_state(state.clone(), auth::guard_pages))
        .layer(from_fn_with_state(state.clone(), auth::load_current_user))
        .layer(session_layer)
        // Below: routes that need no session.
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics_text))
        .nest_service(&pkg_path, ServeDir::new(pkg_dir).precompressed_br().precompressed_gzip())
        .layer(from_fn_with_state(state.metrics.clone(), metrics::track_http))
        .layer(from_fn(move |req, next| security::web_security(secure_cookies, req, next)))
        .layer(CompressionLayer::new())
        .layer(from_fn_with_state(
            Duration::from_secs(state.config.body_read_timeout_secs),
            buffer_page_body,
        ))
        // Pages and server functions take forms, at most a long chat
        // message; only the gateway takes `KEYWARD_MAX_BODY_BYTES`.
        .layer(RequestBodyLimitLayer::new(PAGE_BODY_LIMIT))
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(TraceLayer::new_for_http().make_span_with(|req: &Request<_>| {
            let request_id = req.headers().get("x-request-id").and_then(|v| v.to_str().ok()).unwrap_or("-");
            tracing::info_span!("request", id = %request_id, method = %req.method(), path = %req.uri().path())
        }))
        .layer(SetRequestIdLayer::x_request_id(RandomRequestId))
        // The gateway sits outside the page layers: no session, CSRF check,
        // compression or body-limit layer (it answers 413 in Anthropic's shape).
        .merge(super::gateway::router(&state))
        .with_state(state)
}

/// The app's routes, generated once per process. Generating them renders the
/// app with a process-wide "don't load resources" flag raised (leptos_server
/// 0.8), and a resource first polled on another thread meanwhile never loads
/// (leptos-rs/leptos#4773). Several servers in one process (the integration
/// tests) would otherwise stall a page now and then; a single server builds
/// its router before it serves, so it never meets the flag.
fn route_list() -> Vec<AxumRouteListing> {
    static ROUTES: OnceLock<Vec<AxumRouteListing>> = OnceLock::new();
    ROUTES.get_or_init(|| generate_route_list(App)).clone()
}

/// The client for key probes (model calls use `anthropic::Transport`): a
/// connect timeout, and each probe sets its own overall timeout. It never
/// retries (one user action is at most one upstream call) and never follows
/// a redirect, which would carry the key somewhere else.
pub fn probe_client() -> reqwest::Client {
    reqwest::Client::builder()
        .retry(reqwest::retry::never().max_retries_per_request(0))
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(Duration::from_secs(10))
        .pool_idle_timeout(Duration::from_secs(90))
        .tcp_nodelay(true)
        .user_agent(concat!("keyward/", env!("CARGO_PKG_VERSION")))
        .build()
        .expect("static HTTP client configuration is valid")
}

#[derive(Clone, Copy)]
struct RandomRequestId;

impl MakeRequestId for RandomRequestId {
    fn make_request_id<B>(&mut self, _request: &Request<B>) -> Option<RequestId> {
        let id = format!("{:016x}", rand::random::<u64>());
        HeaderValue::from_str(&id).ok().map(RequestId::new)
    }
}

async fn healthz(State(state): State<AppState>) -> Response {
    match db::ping(&state.db).await {
        Ok(()) => Json(serde_json::json!({ "status": "ok", "database": "ok" })).into_response(),
        Err(err) => {
            tracing::error!(error = %err, "health check: database unreachable");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(serde_json::json!({ "status": "degraded", "database": "unreachable" })),
            )
                .into_response()
        }
    }
}

async fn metrics_text(State(state): State<AppState>) -> Response {
    let mut text = state.metrics.render();
    text.push_str(
        "# HELP keyward_platform_calls_admitted_from_leases_total Platform-key calls admitted in memory, against a lease.\n\
         # TYPE keyward_platform_calls_admitted_from_leases_total counter\n",
    );
    text.push_str(&format!(
        "keyward_platform_calls_admitted_from_leases_total {}\n",
        state.ledger.admitted_from_leases()
    ));
    text.push_str(
        "# HELP keyward_platform_leases_taken_ahead_total Leases taken for a busy user's next 100 ms before it began.\n\
         # TYPE keyward_platform_leases_taken_ahead_total counter\n",
    );
    text.push_str(&format!(
        "keyward_platform_leases_taken_ahead_total {}\n",
        state.ledger.leases_taken_ahead()
    ));
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}

/// `POST /logout`: ends every session of the user, then back to the login page.
async fn logout(
    State(state): State<AppState>,
    Extension(auth::CurrentUser(user)): Extension<auth::CurrentUser>,
    Extension(auth::ClientIp(ip)): Extension<auth::ClientIp>,
    session: Session,
) -> Response {
    if let Err(err) = auth::end_session(&state, &session).await {
        tracing::error!(error = %err, "logout could not end sessions");
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            "Could not log out; please try again.",
        )
            .into_response();
    }
    if let Some(user) = user {
        let entry = db::audit::AuditEntry::own_account(user.id, &ip);
        let now_ms = state.clock.now_ms();
        let logout = db::audit::AuditAction::Logout;
        if let Err(err) = db::audit::append(&state.db, logout, entry, now_ms).await {
            tracing::error!(error = %err, "could not audit logout");
        }
    }
    Redirect::to("/login").into_response()
}

/// Periodically drops expired sessions and old login failures.
fn spawn_housekeeping(db: db::Db, clock: Arc<Clock>) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(600));
        loop {
            tick.tick().await;
            if let Err(err) = db::sessions::delete_expired(&db).await {
                tracing::warn!(error = %err, "could not delete expired sessions");
            }
            let now_ms = clock.now_ms();
            let day_ago = now_ms - crate::server::clock::DAY_MS;
            if let Err(err) = db::rate_window::prune(&db, now_ms).await {
                tracing::warn!(error = %err, "could not prune the per-minute window");
            }
            if let Err(err) = db::login_failures::prune_older_than(&db, day_ago).await {
                tracing::warn!(error = %err, "could not prune login failures");
            }
        }
    });
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
    tracing::info!("shutting down: finishing in-flight requests");
}

/// Leptos settings from `Leptos.toml` (overridable by `LEPTOS_*` variables),
/// or built-in defaults when the file is absent.
pub fn leptos_options() -> LeptosOptions {
    let from_file = Path::new("Leptos.toml")
        .exists()
        .then(|| leptos::config::get_configuration(Some("Leptos.toml")).ok())
        .flatten();
    match from_file {
        Some(conf) => conf.leptos_options,
        None => {
            let mut options = LeptosOptions::builder()
                .output_name("keyward")
                .site_root("target/site")
                .build();
            if let Ok(root) = std::env::var("LEPTOS_SITE_ROOT") {
                options.site_root = root.into();
            }
            if let Some(addr) = std::env::var("LEPTOS_SITE_ADDR")
                .ok()
                .and_then(|a| a.parse().ok())
            {
                options.site_addr = addr;
            }
            options
        }
    }
}
