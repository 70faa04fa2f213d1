//! The append-only audit log of security events and admin actions.
//! Never pass a secret in `detail`.

use super::Db;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditAction {
    Signup,
    Login,
    LoginFailed,
    LoginThrottled,
    Logout,
    UserCreatedByCli,
    UserDisabled,
    UserEnabled,
    PasswordChanged,
    KeySaved,
    KeyReplaced,
    KeyRemoved,
    KeyRejected,
    KeysRotated,
    TokenIssued,
    TokenRevoked,
    FallbackChanged,
    CapsChanged,
    PlanChanged,
    RoleChanged,
    PlanSaved,
}

impl AuditAction {
    pub const ALL: [AuditAction; 21] = [
        AuditAction::Signup,
        AuditAction::Login,
        AuditAction::LoginFailed,
        AuditAction::LoginThrottled,
        AuditAction::Logout,
        AuditAction::UserCreatedByCli,
        AuditAction::UserDisabled,
        AuditAction::UserEnabled,
        AuditAction::PasswordChanged,
        AuditAction::KeySaved,
        AuditAction::KeyReplaced,
        AuditAction::KeyRemoved,
        AuditAction::KeyRejected,
        AuditAction::KeysRotated,
        AuditAction::TokenIssued,
        AuditAction::TokenRevoked,
        AuditAction::FallbackChanged,
        AuditAction::CapsChanged,
        AuditAction::PlanChanged,
        AuditAction::RoleChanged,
        AuditAction::PlanSaved,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AuditAction::Signup => "signup",
            AuditAction::Login => "login",
            AuditAction::LoginFailed => "login_failed",
            AuditAction::LoginThrottled => "login_throttled",
            AuditAction::Logout => "logout",
            AuditAction::UserCreatedByCli => "user_created_cli",
            AuditAction::UserDisabled => "user_disabled",
            AuditAction::UserEnabled => "user_enabled",
            AuditAction::PasswordChanged => "password_changed",
            AuditAction::KeySaved => "key_saved",
            AuditAction::KeyReplaced => "key_replaced",
            AuditAction::KeyRemoved => "key_removed",
            AuditAction::KeyRejected => "key_rejected",
            AuditAction::KeysRotated => "keys_rotated",
            AuditAction::TokenIssued => "token_issued",
            AuditAction::TokenRevoked => "token_revoked",
            AuditAction::FallbackChanged => "fallback_changed",
            AuditAction::CapsChanged => "caps_changed",
            AuditAction::PlanChanged => "plan_changed",
            AuditAction::RoleChanged => "role_changed",
            AuditAction::PlanSaved => "plan_saved",
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct AuditEntry<'a> {
    pub actor_user_id: Option<i64>,
    pub subject_user_id: Option<i64>,
    pub detail: &'a str,
    pub ip: Option<&'a str>,
}

impl<'a> AuditEntry<'a> {
    /// A user acting on their own account, from `ip`.
    pub fn own_account(user_id: i64, ip: &'a str) -> Self {
        Self {
            actor_user_id: Some(user_id),
            subject_user_id: Some(user_id),
            detail: "",
            ip: Some(ip),
        }
    }

    pub fn with_detail(self, detail: &'a str) -> Self {
        Self { detail, ..self }
    }
}

pub async fn append(
    db: impl super::Exec<'_>,
    action: AuditAction,
    entry: AuditEntry<'_>,
    now_ms: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO audit_log (at, actor_user_id, subject_user_id, action, detail, ip) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(now_ms)
    .bind(entry.actor_user_id)
    .bind(entry.subject_user_id)
    .bind(action.as_str())
    .bind(entry.detail)
    .bind(entry.ip)
    .execute(db)
    .await
    .map(|_| ())
}

/// One audit row with the emails of who acted and on whom.
#[derive(Debug, Clone)]
pub struct AuditRecord {
    pub at: i64,
    pub action: String,
    pub actor: Option<String>,
    pub subject: Option<String>,
    pub detail: String,
    pub ip: Option<String>,
}

/// Newest first; `action` and `email` (actor or subject) filter when non-empty.
pub async fn list(
    db: &Db,
    action: &str,
    email: &str,
    limit: i64,
    offset: i64,
) -> Result<Vec<AuditRecord>, sqlx::Error> {
    use sqlx::Row;
    let rows = sqlx::query(
        "SELECT a.at, a.action, actor.email AS actor, subject.email AS subject, a.detail, a.ip \
         FROM audit_log a \
         LEFT JOIN users actor ON actor.id = a.actor_user_id \
         LEFT JOIN users subject ON subject.id = a.subject_user_id \
         WHERE ($1 = '' OR a.action = $1) \
         AND ($2 = '' OR actor.email_norm = $2 OR subject.email_norm = $2) \
         ORDER BY a.id DESC LIMIT $3 OFFSET $4",
    )
    .bind(action)
    .bind(super::users::normalize_email(email))
    .bind(limit)
    .bind(offset)
    .fetch_all(db)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(AuditRecord {
                at: r.try_get("at")?,
                action: r.try_get("action")?,
                actor: r.try_get("actor")?,
                subject: r.try_get("subject")?,
                detail: r.try_get("detail")?,
                ip: r.try_get("ip")?,
            })
        })
        .collect()
}
