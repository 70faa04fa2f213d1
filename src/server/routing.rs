//! Whose key pays for a call — decided here, on the server, for every call
//! (chat turns and, later, gateway requests alike).
//!
//! A user with a saved, healthy key uses it. Otherwise the platform key is
//! used under the free plan. A saved key that Anthropic rejected, or that
//! this server can no longer decrypt, is an error for the user to fix:
//! keyward never quietly spends the platform key in its place.

use secrecy::SecretString;

use crate::{
    error::AppError,
    model::models,
    server::{
        db::{
            plans::{self, Plan},
            users::UserRow,
        },
        state::AppState,
        user_keys,
    },
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeySource {
    Platform,
    User,
}

impl KeySource {
    pub fn as_str(self) -> &'static str {
        match self {
            KeySource::Platform => "platform",
            KeySource::User => "user",
        }
    }
}

/// The key chosen for one call.
#[derive(Debug)]
pub struct RoutedKey {
    pub source: KeySource,
    pub secret: SecretString,
    /// The `user_api_keys` row, when the user pays.
    pub user_key_id: Option<i64>,
    /// The user's plan, when the platform pays (its limits apply).
    pub plan: Option<Plan>,
}

impl RoutedKey {
    /// Models this call may use.
    pub fn allowed_models(&self) -> Vec<String> {
        match &self.plan {
            Some(plan) => plan.models.clone(),
            None => models::MODELS.iter().map(|m| m.id.to_owned()).collect(),
        }
    }

    /// `max_tokens` for a chat turn: the plan's clamp on the platform key.
    pub fn chat_max_tokens(&self) -> i64 {
        match &self.plan {
            Some(plan) => plan.max_tokens,
            None => OWN_KEY_MAX_TOKENS,
        }
    }
}

/// `max_tokens` for chat turns on a user's own key.
pub const OWN_KEY_MAX_TOKENS: i64 = 4096;

/// Picks the key for `user`'s next call.
pub async fn route_call(state: &AppState, user: &UserRow) -> Result<RoutedKey, AppError> {
    if let Some((stored, key)) = user_keys::open_user_key(state, user.id).await? {
        if stored.rejected_at.is_some() {
            return Err(AppError::Validation(
                "Anthropic rejected your key — update it in Settings.".into(),
            ));
        }
        return Ok(RoutedKey {
            source: KeySource::User,
            secret: key.secret,
            user_key_id: Some(key.id),
            plan: None,
        });
    }
    match &state.config.anthropic_api_key {
        Some(platform) => Ok(RoutedKey {
            source: KeySource::Platform,
            secret: platform.clone(),
            user_key_id: None,
            plan: Some(plans::for_user(&state.db, user.id).await?),
        }),
        None => Err(AppError::Validation(
            "This server has no free tier configured. Add your own Anthropic API key in Settings to start chatting.".into(),
        )),
    }
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

/// After a failed call: a user key Anthropic refused is marked unhealthy.
pub async fn note_key_rejection(state: &AppState, routed: &RoutedKey) {
    if let Some(id) = routed.user_key_id {
        if let Err(err) = crate::server::db::user_keys::mark_rejected(&state.db, id).await {
            tracing::error!(error = %err, "could not mark a rejected key");
        }
    }
}
