//! Whose key pays for a call — decided here, on the server, for every call
//! (chat turns and gateway requests alike).
//!
//! A user with a saved, healthy key uses it. Otherwise the platform key is
//! used under the user's plan. A saved key that Anthropic rejected, or that
//! this server can no longer decrypt, is an error for the user to fix:
//! keyward never quietly spends the platform key in its place — unless the
//! user opted in to "use the free tier when my key fails", and then only
//! under the free plan, and the call is marked as such.

use super::payer::{Payer, RouteError, RoutedKey};
use crate::{
    error::AppError,
    model::models,
    server::{
        anthropic::UpstreamError,
        db::{self, plans, users::UserRow},
        state::AppState,
        user_keys::{self, ANTHROPIC},
    },
};

/// Picks the key for `user`'s next call.
pub async fn route_call(state: &AppState, user: &UserRow) -> Result<RoutedKey, RouteError> {
    let saved = db::user_keys::find(&state.db, user.id, ANTHROPIC).await?;
    let own_key_problem = match saved {
        None => None,
        Some(stored) if stored.rejected_at.is_some() => Some(RouteError::KeyRejected),
        Some(stored) => match user_keys::decrypt_stored(state, &stored) {
            Ok(secret) => {
                return Ok(RoutedKey {
                    secret,
                    payer: Payer::OwnKey {
                        key_id: stored.id,
                        caps: user.own_key_caps,
                    },
                })
            }
            Err(_) => {
                tracing::error!(user_id = user.id, "a saved key cannot be decrypted");
                Some(RouteError::KeyUnreadable)
            }
        },
    };
    if let Some(problem) = &own_key_problem {
        if !user.fallback_to_free {
            return Err(problem.clone());
        }
    }
    let platform = state
        .config
        .anthropic_api_key
        .clone()
        .ok_or(RouteError::NoPlatformKey)?;
    // A fallback call runs under the free plan, whatever the user's plan is.
    let plan = if own_key_problem.is_some() {
        plans::by_name(&state.db, plans::FREE)
            .await?
            .ok_or(RouteError::Database)?
    } else {
        plans::for_user(&state.db, user.id).await?
    };
    Ok(RoutedKey {
        secret: platform,
        payer: Payer::Platform {
            plan,
            fallback: own_key_problem.is_some(),
        },
    })
}

/// Models `user` may pick: every known model on their own key, their
/// plan's models otherwise.
pub async fn allowed_models(
    state: &AppState,
    user_id: i64,
    has_own_key: bool,
) -> Result<Vec<String>, AppError> {
    if has_own_key {
        Ok(models::MODELS.iter().map(|m| m.id.to_owned()).collect())
    } else {
        Ok(plans::for_user(&state.db, user_id).await?.models)
    }
}

/// Logs a failed call and marks a user key Anthropic refused.
pub async fn note_failure(state: &AppState, routed: &RoutedKey, err: &UpstreamError) {
    tracing::warn!(error = %err.label(), source = routed.paid_by().as_str(), "upstream call failed");
    if err.is_key_rejection() {
        note_key_rejection(state, routed).await;
    }
}

/// After a failed call: a user key Anthropic refused is marked unhealthy.
pub async fn note_key_rejection(state: &AppState, routed: &RoutedKey) {
    let Some(id) = routed.own_key_id() else {
        return;
    };
    let marked = async {
        let mut tx = state.db.begin().await?;
        db::user_keys::mark_rejected(&mut *tx, id, state.clock.now_ms()).await?;
        state.commit_routing_change(tx).await
    };
    if let Err(err) = marked.await {
        tracing::error!(error = %err, "could not mark a rejected key");
    }
}
