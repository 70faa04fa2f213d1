//! The settings page's key section. The key travels browser → server once,
//! on save; answers only ever carry the masked form.

use leptos::prelude::*;

use crate::{
    error::AppError,
    model::{caps::OwnKeyCapsStatus, KeyStatus, SecretInput},
};

#[server(endpoint = "keys/status")]
pub async fn get_key_status() -> Result<Option<KeyStatus>, AppError> {
    use super::context::as_user;
    use crate::server::user_keys;

    as_user(async |ctx, user| user_keys::key_status(&ctx.state, user).await).await
}

#[server(endpoint = "keys/save")]
pub async fn save_key(api_key: SecretInput) -> Result<KeyStatus, AppError> {
    use super::context::as_user;
    use crate::server::user_keys;

    as_user(async |ctx, user| {
        user_keys::save_key(&ctx.state, user, api_key.into_secret(), &ctx.ip).await
    })
    .await
}

#[server(endpoint = "keys/remove")]
pub async fn remove_key() -> Result<(), AppError> {
    use super::context::as_user;
    use crate::server::user_keys;

    as_user(async |ctx, user| {
        user_keys::remove_key(&ctx.state, user, &ctx.ip)
            .await
            .map(|_| ())
    })
    .await
}

/// Turns "use the free tier when my key fails" on or off.
#[server(endpoint = "keys/fallback")]
pub async fn set_fallback(on: bool) -> Result<(), AppError> {
    use super::context::as_user;
    use crate::server::user_keys;

    as_user(async |ctx, user| user_keys::set_fallback(&ctx.state, user, on, &ctx.ip).await).await
}

/// The daily caps on the user's own key, with today's use.
#[server(endpoint = "keys/caps")]
pub async fn get_caps() -> Result<OwnKeyCapsStatus, AppError> {
    use super::context::as_user;
    use crate::server::user_keys;

    as_user(async |ctx, user| user_keys::caps_status(&ctx.state, user).await).await
}

/// Sets the daily caps on the user's own key, as typed: a blank field
/// means no cap.
#[server(endpoint = "keys/caps/save")]
pub async fn save_caps(
    tokens_per_day: String,
    usd_per_day: String,
) -> Result<OwnKeyCapsStatus, AppError> {
    use super::context::as_user;
    use crate::{
        model::caps::{parse_token_cap, parse_usd_cap, OwnKeyCaps},
        server::user_keys,
    };

    as_user(async |ctx, user| {
        let caps = OwnKeyCaps {
            tokens_per_day: parse_token_cap(&tokens_per_day).map_err(AppError::Validation)?,
            micro_usd_per_day: parse_usd_cap(&usd_per_day).map_err(AppError::Validation)?,
        };
        user_keys::set_caps(&ctx.state, user, caps, &ctx.ip).await
    })
    .await
}
