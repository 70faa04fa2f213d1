//! Creating, listing and revoking personal tokens, with an audit row for each.

use secrecy::SecretString;

use super::format::{hash_token, hex, new_token};
use crate::{
    error::AppError,
    server::{
        db::{
            api_tokens::{self, InsertError, TokenRow},
            audit::{self, AuditAction, AuditEntry},
            users::UserRow,
            Db,
        },
        state::AppState,
    },
};

const MAX_NAME_CHARS: usize = 64;
/// Enough for every script and machine a person runs; keeps lists readable.
const MAX_LIVE_TOKENS: usize = 50;

/// A token just made: the secret is shown once, then only its row remains.
pub struct CreatedToken {
    pub row: TokenRow,
    pub token: SecretString,
}

fn check_name(name: &str) -> Result<&str, AppError> {
    let name = name.trim();
    if name.is_empty() {
        return Err(AppError::Validation(
            "Give the token a name, e.g. the script or machine that will use it.".into(),
        ));
    }
    if name.chars().count() > MAX_NAME_CHARS {
        return Err(AppError::Validation(format!(
            "Token names can be at most {MAX_NAME_CHARS} characters."
        )));
    }
    if name.chars().any(char::is_control) {
        return Err(AppError::Validation(
            "Token names cannot contain control characters.".into(),
        ));
    }
    Ok(name)
}

/// Makes a token for `user` at `now_ms`: asked for by the user from `ip`,
/// or by an operator through the CLI when `ip` is `None`.
pub async fn create_token(
    db: &Db,
    user: &UserRow,
    name: &str,
    ip: Option<&str>,
    now_ms: i64,
) -> Result<CreatedToken, AppError> {
    let name = check_name(name)?;
    if user.disabled {
        return Err(AppError::AccountDisabled);
    }
    let live = api_tokens::live_for_user(db, user.id).await?;
    if live.len() >= MAX_LIVE_TOKENS {
        return Err(AppError::Validation(format!(
            "You have {MAX_LIVE_TOKENS} tokens already. Revoke one you no longer use first."
        )));
    }
    let (token, shown) = new_token();
    let hash = hex(&hash_token(&token));
    let mut tx = db.begin().await?;
    let row = api_tokens::insert(&mut *tx, user.id, name, &shown, &hash, now_ms)
        .await
        .map_err(|err| match err {
            InsertError::NameTaken => AppError::Validation(format!(
                "You already have a token named \"{name}\". Pick another name or revoke that one."
            )),
            InsertError::Database(err) => AppError::from(err),
        })?;
    let detail = format!("{} ({}…)", row.name, row.prefix);
    let entry = AuditEntry {
        actor_user_id: ip.map(|_| user.id),
        subject_user_id: Some(user.id),
        detail: &detail,
        ip,
    };
    audit::append(&mut *tx, AuditAction::TokenIssued, entry, now_ms).await?;
    tx.commit().await?;
    tracing::info!(
        user_id = user.id,
        token_id = row.id,
        "personal token issued"
    );
    Ok(CreatedToken { row, token })
}

pub async fn list_tokens(state: &AppState, user_id: i64) -> Result<Vec<TokenRow>, AppError> {
    Ok(api_tokens::live_for_user(&state.db, user_id).await?)
}

/// Revokes token `token_id`. A non-admin `actor` may revoke only their own.
/// Takes effect at once on this instance and within a second on others.
pub async fn revoke_token(
    state: &AppState,
    actor: &UserRow,
    token_id: i64,
    ip: &str,
) -> Result<(), AppError> {
    let owner = (!actor.is_admin()).then_some(actor.id);
    let now_ms = state.clock.now_ms();
    let mut tx = state.db.begin().await?;
    let revoked = api_tokens::revoke(&mut *tx, token_id, owner, now_ms)
        .await?
        .ok_or(AppError::NotFound)?;
    audit_revocation(&mut tx, Some(actor.id), &revoked, Some(ip), now_ms).await?;
    state.commit_routing_change(tx).await?;
    Ok(())
}

/// The operator CLI: revokes `user`'s live token called `name`, at `now_ms`.
pub async fn revoke_token_by_name(
    db: &Db,
    user: &UserRow,
    name: &str,
    now_ms: i64,
) -> Result<(), AppError> {
    let mut tx = db.begin().await?;
    let revoked = api_tokens::revoke_by_name(&mut *tx, user.id, name.trim(), now_ms)
        .await?
        .ok_or_else(|| {
            AppError::Validation(format!(
                "{} has no live token named \"{name}\".",
                user.email
            ))
        })?;
    audit_revocation(&mut tx, None, &revoked, None, now_ms).await?;
    // Instances serving the gateway notice within their cache's lifetime.
    Ok(tx.commit().await?)
}

async fn audit_revocation(
    tx: &mut sqlx::AnyConnection,
    actor: Option<i64>,
    revoked: &TokenRow,
    ip: Option<&str>,
    now_ms: i64,
) -> Result<(), AppError> {
    let detail = format!("{} ({}…)", revoked.name, revoked.prefix);
    let entry = AuditEntry {
        actor_user_id: actor,
        subject_user_id: Some(revoked.user_id),
        detail: &detail,
        ip,
    };
    audit::append(&mut *tx, AuditAction::TokenRevoked, entry, now_ms).await?;
    tracing::info!(token_id = revoked.id, "personal token revoked");
    Ok(())
}
