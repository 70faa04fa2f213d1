//! Shared application state, cloned into every handler: one reference
//! count per clone (axum clones the state for each request and each layer
//! that reads it).

use std::{ops::Deref, sync::Arc};

use axum::extract::FromRef;
use leptos::config::LeptosOptions;

use tokio_util::task::TaskTracker;

use super::{
    accounting::LedgerWriter, auth::LoginThrottle, config::Config, db::Db, metrics::Metrics,
    tokens::PrincipalCache, vault::Keyring,
};

#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl AppState {
    pub fn new(shared: Shared) -> Self {
        Self(Arc::new(shared))
    }

    /// Commits `tx`, a change to what decides who pays for a user's calls
    /// (their key, its caps or fallback, their plan, role or account, a
    /// token), then drops the routing decisions cached for gateway tokens,
    /// so the next call is routed afresh. Every such change ends here.
    pub async fn commit_routing_change(
        &self,
        tx: sqlx::Transaction<'_, sqlx::Any>,
    ) -> Result<(), sqlx::Error> {
        tx.commit().await?;
        self.principals.invalidate();
        Ok(())
    }
}

impl Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

pub struct Shared {
    pub leptos_options: LeptosOptions,
    pub db: Db,
    pub config: Arc<Config>,
    /// Master keys for the key vault; never serialised, never logged.
    pub keyring: Arc<Keyring>,
    pub metrics: Arc<Metrics>,
    pub login_throttle: LoginThrottle,
    /// The time limits are computed against (tests move it).
    pub clock: Arc<super::clock::Clock>,
    /// The client key probes use (`GET /v1/models` before a key is stored).
    pub http: reqwest::Client,
    /// Model calls to `$ANTHROPIC_BASE_URL`, on their own connection pool.
    pub anthropic: super::anthropic::AnthropicClient,
    /// Verified against when a login names an unknown email (equal timing).
    pub dummy_hash: Arc<String>,
    /// Ledger rows and reservation settlements, committed in groups.
    pub ledger: LedgerWriter,
    /// Upstream calls running in their own tasks; shutdown waits for them.
    pub tasks: TaskTracker,
    /// Cuts calls while they run (as `stopped`): all of them when the
    /// shutdown grace has run out, one user's when the account is disabled.
    pub cuts: Arc<super::calls::CallCuts>,
    /// This process's name on the reservations it takes.
    pub instance: Arc<super::calls::Instance>,
    /// Gateway tokens resolved to their owner and routing, for under a second.
    pub principals: Arc<PrincipalCache>,
    /// Platform-key `count_tokens` calls per user in the last minute.
    pub count_window: Arc<super::limits::CountWindow>,
}

impl FromRef<AppState> for LeptosOptions {
    fn from_ref(state: &AppState) -> Self {
        state.leptos_options.clone()
    }
}
