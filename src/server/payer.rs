//! Who pays for a call, as routing decided it (`routing::route_call`),
//! and why no key could be chosen. Plain types: everything downstream of
//! the decision (limits, the call, its bill) reads them, nothing here
//! reaches back.

use secrecy::SecretString;

use crate::{
    error::AppError,
    model::{caps::OwnKeyCaps, domain::PaidBy, models},
    server::db::plans::Plan,
};

/// Why no key could be chosen. Each case is the user's to fix, except `Database`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RouteError {
    #[error("Anthropic rejected your key — update it in Settings.")]
    KeyRejected,
    #[error("Your saved Anthropic key can no longer be read by this server. Please re-enter your key in Settings.")]
    KeyUnreadable,
    #[error("This server has no free tier configured. Add your own Anthropic API key in Settings to start chatting.")]
    NoPlatformKey,
    #[error("database error")]
    Database,
    /// The database did not answer; nothing was decided.
    #[error("database unreachable")]
    DatabaseUnreachable,
}

impl From<RouteError> for AppError {
    fn from(err: RouteError) -> Self {
        match err {
            RouteError::Database => AppError::Internal,
            RouteError::DatabaseUnreachable => AppError::DatabaseUnavailable,
            // Each is the user's to fix, and says how.
            RouteError::KeyRejected | RouteError::KeyUnreadable | RouteError::NoPlatformKey => {
                AppError::Validation(err.to_string())
            }
        }
    }
}

impl From<sqlx::Error> for RouteError {
    fn from(err: sqlx::Error) -> Self {
        tracing::error!(error = %err, "database error while routing a call");
        if crate::server::db::is_unreachable(&err) {
            RouteError::DatabaseUnreachable
        } else {
            RouteError::Database
        }
    }
}

/// The key chosen for one call, and who pays for it.
#[derive(Debug, Clone)]
pub struct RoutedKey {
    pub secret: SecretString,
    pub payer: Payer,
}

/// Who pays for a call, with what that payer's call is held to.
#[derive(Debug, Clone)]
pub enum Payer {
    /// The operator's platform key, under `plan`'s limits. `fallback`:
    /// the user's own key failed and they opted in to the free tier.
    Platform { plan: Plan, fallback: bool },
    /// The user's own key (the `user_api_keys` row `key_id`), within the
    /// caps they set on it.
    OwnKey { key_id: i64, caps: OwnKeyCaps },
}

impl RoutedKey {
    pub fn paid_by(&self) -> PaidBy {
        match self.payer {
            Payer::Platform { .. } => PaidBy::Platform,
            Payer::OwnKey { .. } => PaidBy::OwnKey,
        }
    }

    /// The plan whose limits hold the call, when the platform pays.
    pub fn plan(&self) -> Option<&Plan> {
        match &self.payer {
            Payer::Platform { plan, .. } => Some(plan),
            Payer::OwnKey { .. } => None,
        }
    }

    /// The user's key row, when the user pays.
    pub fn own_key_id(&self) -> Option<i64> {
        match self.payer {
            Payer::OwnKey { key_id, .. } => Some(key_id),
            Payer::Platform { .. } => None,
        }
    }

    /// Models this call may use.
    pub fn allowed_models(&self) -> Vec<String> {
        match self.plan() {
            Some(plan) => plan.models.clone(),
            None => models::MODELS.iter().map(|m| m.id.to_owned()).collect(),
        }
    }

    /// Whether `model` may be called: on the platform key only the plan's
    /// models (or a dated snapshot of one); on the user's key any model.
    pub fn allows_model(&self, model: &str) -> bool {
        match self.plan() {
            Some(plan) => plan.models.iter().any(|m| models::same_model(m, model)),
            None => true,
        }
    }

    /// `max_tokens` for a chat turn: the plan's clamp on the platform key.
    pub fn chat_max_tokens(&self) -> i64 {
        match self.plan() {
            Some(plan) => plan.max_tokens,
            None => OWN_KEY_MAX_TOKENS,
        }
    }
}

/// `max_tokens` for chat turns on a user's own key.
pub const OWN_KEY_MAX_TOKENS: i64 = 4096;
