//! The daily caps a user sets on their own key: reading them with today's
//! use, and changing them. `limits::reserve_call` enforces them.

use crate::{
    error::AppError,
    model::caps::{format_usd_amount, OwnKeyCaps, OwnKeyCapsStatus},
    server::{
        clock::{human_duration, next_utc_midnight, utc_day},
        db::{
            self,
            audit::{self, AuditAction, AuditEntry},
            users::UserRow,
        },
        state::AppState,
        user_keys::ANTHROPIC,
    },
};

pub async fn caps_status(state: &AppState, user: &UserRow) -> Result<OwnKeyCapsStatus, AppError> {
    let now = state.clock.now_ms();
    let (tokens_today, micro_usd_today) =
        db::own_key_usage::today(&state.db, user.id, &utc_day(now)).await?;
    let has_own_key = db::user_keys::find(&state.db, user.id, ANTHROPIC)
        .await?
        .is_some();
    Ok(OwnKeyCapsStatus {
        caps: user.own_key_caps,
        has_own_key,
        tokens_today,
        micro_usd_today,
        resets_in: human_duration(next_utc_midnight(now) - now),
    })
}

/// Replaces the user's caps; the next call already runs under them.
pub async fn set_caps(
    state: &AppState,
    user: &UserRow,
    caps: OwnKeyCaps,
    ip: &str,
) -> Result<OwnKeyCapsStatus, AppError> {
    let mut tx = state.db.begin().await?;
    db::users::set_own_key_caps(&mut *tx, user.id, caps).await?;
    let detail = describe(caps);
    let entry = AuditEntry::own_account(user.id, ip).with_detail(&detail);
    audit::append(
        &mut *tx,
        AuditAction::CapsChanged,
        entry,
        state.clock.now_ms(),
    )
    .await?;
    // Gateway tokens carry the caps in their cached routing decision.
    state.commit_routing_change(tx).await?;
    let user = UserRow {
        own_key_caps: caps,
        ..user.clone()
    };
    caps_status(state, &user).await
}

/// "tokens 200000/day, spend $5/day", for the audit log.
fn describe(caps: OwnKeyCaps) -> String {
    let tokens = caps
        .tokens_per_day
        .map_or("no token cap".to_owned(), |n| format!("tokens {n}/day"));
    let spend = caps
        .micro_usd_per_day
        .map_or("no spending cap".to_owned(), |m| {
            format!("spend {}/day", format_usd_amount(m))
        });
    format!("{tokens}, {spend}")
}
