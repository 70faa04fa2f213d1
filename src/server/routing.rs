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
    server::{db::users::UserRow, state::AppState, user_keys},
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
}

pub const DEFAULT_FREE_MODEL: &str = "claude-haiku-4-5";
/// `max_tokens` clamp on the free plan (KEYWARD_FREE_MAX_TOKENS).
pub const DEFAULT_FREE_MAX_TOKENS: u32 = 1024;
/// `max_tokens` for chat turns on a user's own key.
pub const OWN_KEY_MAX_TOKENS: u32 = 4096;

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
        });
    }
    match &state.config.anthropic_api_key {
        Some(platform) => Ok(RoutedKey { source: KeySource::Platform, secret: platform.clone(), user_key_id: None }),
        None => Err(AppError::Validation(
            "This server has no free tier configured. Add your own Anthropic API key in Settings to start chatting.".into(),
        )),
    }
}

/// Models on the free plan (KEYWARD_FREE_MODELS, comma-separated).
pub fn free_models(state: &AppState) -> Vec<String> {
    let configured = state
        .config
        .free_plan
        .models
        .as_deref()
        .unwrap_or(DEFAULT_FREE_MODEL);
    configured
        .split(',')
        .map(str::trim)
        .filter(|m| !m.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Models `user` may pick: every known model on their own key, the free
/// plan's models otherwise.
pub fn allowed_models(state: &AppState, has_own_key: bool) -> Vec<String> {
    if has_own_key {
        models::MODELS.iter().map(|m| m.id.to_owned()).collect()
    } else {
        free_models(state)
    }
}

/// `max_tokens` for a chat turn paid by `source`.
pub fn chat_max_tokens(state: &AppState, source: KeySource) -> u32 {
    match source {
        KeySource::User => OWN_KEY_MAX_TOKENS,
        KeySource::Platform => state
            .config
            .free_plan
            .max_tokens
            .unwrap_or(DEFAULT_FREE_MAX_TOKENS),
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
