//! What the admin pages show. Money is micro-USD; days are `YYYY-MM-DD` UTC.

use serde::{Deserialize, Serialize};

/// The period a dashboard covers, as chosen in the page's query string.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct PeriodQuery {
    /// `1`, `7` or `30` days ending today; ignored when `from`/`to` are set.
    pub days: Option<u32>,
    pub from: Option<String>,
    pub to: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dashboard {
    pub from: String,
    pub to: String,
    pub totals: TotalsView,
    pub days: Vec<DayPoint>,
    pub models: Vec<ModelPoint>,
    pub latency_p50_ms: Option<i64>,
    pub latency_p95_ms: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct TotalsView {
    pub requests: i64,
    pub errors: i64,
    pub platform_requests: i64,
    pub user_requests: i64,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub cache_tokens: i64,
    pub platform_cost: i64,
    pub user_cost: i64,
    /// What prompt caching saved, both keys together (micro-USD).
    pub saved_by_caching: i64,
    pub active_users: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DayPoint {
    pub day: String,
    pub platform_requests: i64,
    pub user_requests: i64,
    pub platform_cost: i64,
    pub user_cost: i64,
    /// What prompt caching saved that day, both keys (negative on a day
    /// that only wrote the cache).
    pub saved_by_caching: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelPoint {
    pub model: String,
    pub requests: i64,
    pub tokens: i64,
    pub cost: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsersPage {
    pub users: Vec<AdminUserRow>,
    pub total: i64,
    pub page: i64,
    pub per_page: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdminUserRow {
    pub id: i64,
    pub email: String,
    pub is_admin: bool,
    pub disabled: bool,
    pub plan: String,
    /// `none`, `ok` or `rejected`.
    pub key_status: String,
    pub platform_requests: i64,
    pub user_requests: i64,
    pub cost: i64,
    /// `YYYY-MM-DD HH:MM UTC`
    pub last_active: Option<String>,
}

/// One user's page: who they are, their days and their recent calls.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserDetail {
    pub user: AdminUserRow,
    pub plan_id: i64,
    pub days: Vec<UserDayRow>,
    pub recent: Vec<crate::model::CallSummary>,
    pub sessions: Vec<crate::model::SessionSummary>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserDayRow {
    pub day: String,
    pub paid_by: super::domain::PaidBy,
    pub requests: i64,
    pub tokens: i64,
    pub cost: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanView {
    pub id: i64,
    pub name: String,
    pub requests_per_minute: Option<i64>,
    pub requests_per_day: Option<i64>,
    pub tokens_per_day: Option<i64>,
    pub models: Vec<String>,
    pub max_tokens: i64,
    /// Anthropic's server tools (web search, code execution, …) on the platform key.
    pub allows_server_tools: bool,
    pub prompt_caching: super::caching::PromptCaching,
    pub users: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditPage {
    pub entries: Vec<AuditRow>,
    pub page: i64,
    pub has_more: bool,
    /// Every action name that can be filtered on.
    pub actions: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRow {
    pub at: String,
    pub action: String,
    pub actor: Option<String>,
    pub subject: Option<String>,
    pub detail: String,
    pub ip: Option<String>,
}
