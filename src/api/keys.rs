//! The settings page's key section. The key travels browser → server once,
//! on save; answers only ever carry the masked form.

use leptos::prelude::*;

use crate::{
    error::AppError,
    model::{KeyStatus, SecretInput},
};

#[server(endpoint = "keys/status")]
pub async fn get_key_status() -> Result<Option<KeyStatus>, AppError> {
    use super::context::{request_context, with_status};
    use crate::server::user_keys;

    with_status(
        async {
            let ctx = request_context()?;
            let user = ctx.require_user()?;
            user_keys::key_status(&ctx.state, user).await
        }
        .await,
    )
}

#[server(endpoint = "keys/save")]
pub async fn save_key(api_key: SecretInput) -> Result<KeyStatus, AppError> {
    use super::context::{request_context, with_status};
    use crate::server::user_keys;

    with_status(
        async {
            let ctx = request_context()?;
            let user = ctx.require_user()?;
            user_keys::save_key(&ctx.state, user, api_key.into_secret(), &ctx.ip).await
        }
        .await,
    )
}

#[server(endpoint = "keys/remove")]
pub async fn remove_key() -> Result<(), AppError> {
    use super::context::{request_context, with_status};
    use crate::server::user_keys;

    with_status(
        async {
            let ctx = request_context()?;
            let user = ctx.require_user()?;
            user_keys::remove_key(&ctx.state, user, &ctx.ip)
                .await
                .map(|_| ())
        }
        .await,
    )
}

/// Turns "use the free tier when my key fails" on or off.
#[server(endpoint = "keys/fallback")]
pub async fn set_fallback(on: bool) -> Result<(), AppError> {
    use super::context::{request_context, with_status};
    use crate::server::user_keys;

    with_status(
        async {
            let ctx = request_context()?;
            let user = ctx.require_user()?;
            user_keys::set_fallback(&ctx.state, user, on, &ctx.ip).await
        }
        .await,
    )
}
