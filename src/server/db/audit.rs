//! The append-only audit log of security events and admin actions.
//! Never pass a secret in `detail`.

use super::{now_ms, Db};

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
}

impl AuditAction {
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
    db: &Db,
    action: AuditAction,
    entry: AuditEntry<'_>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO audit_log (at, actor_user_id, subject_user_id, action, detail, ip) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(now_ms())
    .bind(entry.actor_user_id)
    .bind(entry.subject_user_id)
    .bind(action.as_str())
    .bind(entry.detail)
    .bind(entry.ip)
    .execute(db)
    .await
    .map(|_| ())
}
