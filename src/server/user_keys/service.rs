//! Saving, showing and removing a user's own key.

use secrecy::SecretString;

use super::{check_shape, last4, mask, probe_key, ProbeOutcome, ANTHROPIC};
use crate::{
    error::AppError,
    model::{KeyHealth, KeyStatus},
    server::{
        db::{
            self,
            audit::{self, AuditAction, AuditEntry},
            user_keys::{self, StoredKey},
            users::UserRow,
        },
        state::AppState,
        vault::{cipher, KeyOwner, VaultError},
    },
};

fn owner(user_id: i64) -> KeyOwner<'static> {
    KeyOwner {
        user_id,
        provider: ANTHROPIC,
    }
}

/// Checks the shape, probes Anthropic, and only then stores the key sealed.
#[tracing::instrument(skip(state, user, pasted), fields(user_id = user.id))]
pub async fn save_key(
    state: &AppState,
    user: &UserRow,
    pasted: SecretString,
    ip: &str,
) -> Result<KeyStatus, AppError> {
    let key = check_shape(pasted)?;
    let audit_entry = |detail| AuditEntry::own_account(user.id, ip).with_detail(detail);
    let outcome = probe_key(&state.http, &state.config.anthropic_base_url, &key).await;
    let refusal = match outcome {
        ProbeOutcome::Valid => None,
        ProbeOutcome::Rejected => Some(AppError::Validation(
            "Anthropic rejected this key. Check that you copied all of it and that it is still \
             active in the Anthropic Console. Nothing was saved."
                .into(),
        )),
        ProbeOutcome::NoPermission => Some(AppError::Validation(
            "This key lacks permission to use the Anthropic API. Check its workspace and \
             permissions in the Anthropic Console. Nothing was saved."
                .into(),
        )),
        ProbeOutcome::Unavailable => {
            return Err(AppError::Unavailable(
                "Could not verify the key with Anthropic right now, so nothing was saved. Try \
                 again in a minute."
                    .into(),
            ))
        }
    };
    if let Some(refusal) = refusal {
        let detail = if outcome == ProbeOutcome::Rejected {
            "probe: 401"
        } else {
            "probe: 403"
        };
        audit::append(
            &state.db,
            AuditAction::KeyRejected,
            audit_entry(detail),
            state.clock.now_ms(),
        )
        .await?;
        return Err(refusal);
    }

    let sealed = cipher::seal(&state.keyring.current, owner(user.id), &key);
    let shown = mask(&last4(&key));
    // Read before the transaction: in SQLite a transaction that reads first
    // cannot wait for the write lock (another writer's commit in between
    // fails it at once).
    let replaced = user_keys::find(&state.db, user.id, ANTHROPIC)
        .await?
        .is_some();
    let mut tx = state.db.begin().await?;
    let now_ms = state.clock.now_ms();
    user_keys::upsert(&mut *tx, user.id, ANTHROPIC, &sealed, &last4(&key), now_ms).await?;
    let action = if replaced {
        AuditAction::KeyReplaced
    } else {
        AuditAction::KeySaved
    };
    audit::append(&mut *tx, action, audit_entry(&shown), state.clock.now_ms()).await?;
    state.commit_routing_change(tx).await?;
    tracing::info!(replaced, master_key_id = %sealed.master_key_id, "user key stored");
    key_status(state, user).await?.ok_or(AppError::Internal)
}

/// Deletes the user's key row (the ciphertext is gone, not just hidden).
pub async fn remove_key(state: &AppState, user: &UserRow, ip: &str) -> Result<bool, AppError> {
    let mut tx = state.db.begin().await?;
    let removed = user_keys::delete(&mut *tx, user.id, ANTHROPIC).await?;
    if removed {
        let entry = AuditEntry::own_account(user.id, ip);
        audit::append(
            &mut *tx,
            AuditAction::KeyRemoved,
            entry,
            state.clock.now_ms(),
        )
        .await?;
    }
    state.commit_routing_change(tx).await?;
    Ok(removed)
}

/// What the settings page shows about the saved key, if any.
pub async fn key_status(state: &AppState, user: &UserRow) -> Result<Option<KeyStatus>, AppError> {
    let Some(stored) = user_keys::find(&state.db, user.id, ANTHROPIC).await? else {
        return Ok(None);
    };
    let health = match stored.rejected_at {
        Some(at) => KeyHealth::Rejected {
            on: db::format_day(at),
        },
        None if decrypt(state, &stored).is_err() => KeyHealth::Unreadable,
        None => KeyHealth::Ok,
    };
    Ok(Some(KeyStatus {
        masked: mask(&stored.last4),
        added_on: db::format_day(stored.created_at),
        last_used: stored.last_used_at.map(db::format_time),
        health,
        fallback_to_free: user.fallback_to_free,
    }))
}

/// The user's key in clear for a call. Fails when no configured master
/// key can open it — the caller must then not fall back to the platform key.
pub fn decrypt_stored(state: &AppState, stored: &StoredKey) -> Result<SecretString, VaultError> {
    decrypt(state, stored)
}

fn decrypt(state: &AppState, stored: &StoredKey) -> Result<SecretString, VaultError> {
    cipher::open(&state.keyring, owner(stored.user_id), &stored.sealed)
}

/// Opts in or out of the free tier when the user's own key fails.
pub async fn set_fallback(
    state: &AppState,
    user: &UserRow,
    on: bool,
    ip: &str,
) -> Result<(), AppError> {
    let mut tx = state.db.begin().await?;
    db::users::set_fallback_to_free(&mut *tx, user.id, on).await?;
    let detail = if on { "on" } else { "off" };
    let entry = AuditEntry::own_account(user.id, ip).with_detail(detail);
    audit::append(
        &mut *tx,
        AuditAction::FallbackChanged,
        entry,
        state.clock.now_ms(),
    )
    .await?;
    state.commit_routing_change(tx).await?;
    Ok(())
}
