//! Plain data shared by the server and the browser. Nothing here holds a secret.

use serde::{Deserialize, Serialize};

pub mod admin;
pub mod caching;
pub mod caps;
pub mod chat;
pub mod domain;
pub mod models;
pub mod prices;

/// The logged-in user as the UI sees them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserView {
    pub id: i64,
    pub email: String,
    pub is_admin: bool,
}

/// Facts about the server the UI needs on every page.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct SiteInfo {
    pub signup_open: bool,
    /// Replies come from the bundled mock upstream (`make run` without a key).
    pub demo_mode: bool,
}

/// One account as the admin overview lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdminUserSummary {
    pub id: i64,
    pub email: String,
    pub is_admin: bool,
    pub disabled: bool,
    /// Creation date, `YYYY-MM-DD` (UTC).
    pub created_on: String,
}

/// The user's saved Anthropic key as the settings page shows it: never the key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyStatus {
    /// `sk-ant-…ABCD`
    pub masked: String,
    /// `YYYY-MM-DD` (UTC)
    pub added_on: String,
    /// `YYYY-MM-DD HH:MM UTC`
    pub last_used: Option<String>,
    pub health: KeyHealth,
    /// The user opted in to the free tier when this key fails.
    pub fallback_to_free: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum KeyHealth {
    Ok,
    /// Anthropic answered 401/403 for this key on that day.
    Rejected {
        on: String,
    },
    /// No configured master key can decrypt it: the user must paste it again.
    Unreadable,
}

/// The settings page's usage section.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageSummary {
    pub plan: String,
    pub has_own_key: bool,
    pub requests_today: i64,
    pub requests_per_day: Option<i64>,
    pub tokens_today: i64,
    pub tokens_per_day: Option<i64>,
    pub requests_per_minute: Option<i64>,
    pub max_tokens: i64,
    /// "5 h 12 min"
    pub resets_in: String,
    pub recent: Vec<CallSummary>,
    /// Gateway calls grouped by client session (Claude Code's), newest first.
    pub sessions: Vec<SessionSummary>,
    /// What prompt caching saved this user today and this month (UTC), in
    /// micro-USD, on either key.
    pub saved_today: i64,
    pub saved_this_month: i64,
}

/// What one client session (say, a Claude Code session) used.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionSummary {
    pub session: String,
    pub calls: i64,
    /// Distinct agents that made its calls (subagents each have one).
    pub agents: i64,
    pub tokens: i64,
    pub cost_micro_usd: i64,
    pub first: String,
    pub last: String,
}

/// One upstream call in the user's history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallSummary {
    pub at: String,
    pub model: String,
    pub paid_by: domain::PaidBy,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub cost_micro_usd: i64,
    pub status: String,
}

/// A personal gateway token as lists show it: never the token itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenView {
    pub id: i64,
    pub name: String,
    /// `kw_AbC123` — the start of the token, to tell tokens apart.
    pub prefix: String,
    /// `YYYY-MM-DD` (UTC)
    pub created_on: String,
    /// `YYYY-MM-DD HH:MM UTC`
    pub last_used: Option<String>,
}

/// A token just created: `token` is shown this once and never again.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewToken {
    pub token: String,
    pub view: TokenView,
    /// The models the token's calls may use when they run on the plan (the
    /// platform key); `None` when they run on the user's own key (any).
    pub plan_models: Option<Vec<String>>,
}

impl std::fmt::Debug for NewToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewToken")
            .field("token", &"[REDACTED]")
            .field("view", &self.view)
            .field("plan_models", &self.plan_models)
            .finish()
    }
}

/// A password (or other secret) typed into a form on its way to the server.
/// `Debug` never shows it; on the server it becomes a `SecretString` at once.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SecretInput(String);

impl SecretInput {
    #[cfg(feature = "ssr")]
    pub fn into_secret(self) -> secrecy::SecretString {
        secrecy::SecretString::from(self.0)
    }
}

impl From<String> for SecretInput {
    fn from(value: String) -> Self {
        Self(value)
    }
}

impl std::fmt::Debug for SecretInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[REDACTED]")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_input_debug_is_redacted_and_serde_is_plain() {
        let secret = SecretInput::from("hunter2hunter2".to_owned());
        assert_eq!(format!("{secret:?}"), "[REDACTED]");
        assert_eq!(
            serde_json::to_string(&secret).unwrap(),
            "\"hunter2hunter2\""
        );
    }
}
