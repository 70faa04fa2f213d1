//! Account settings.

use leptos::prelude::*;

use crate::{error::AppError, model::SecretInput};

/// Changes the password (the current one is required) and ends every other
/// session of the user; this browser stays logged in on a fresh session id.
#[server(endpoint = "account/password")]
pub async fn change_password(
    current_password: SecretInput,
    new_password: SecretInput,
) -> Result<(), AppError> {
    use super::context::{as_user, session};
    use crate::server::auth;

    as_user(async |ctx, user| {
        let session = session().await?;
        auth::change_password(
            &ctx.state,
            user,
            current_password.into_secret(),
            new_password.into_secret(),
            &ctx.ip,
        )
        .await?;
        auth::start_session(&session, user, ctx.state.clock.now_ms())
            .await
            .map_err(|_| AppError::Internal)?;
        Ok(())
    })
    .await
}

/// The default system prompt from Settings (sent by every conversation
/// without one of its own).
#[server(endpoint = "account/system_prompt")]
pub async fn my_system_prompt() -> Result<Option<String>, AppError> {
    use super::context::as_user;
    use crate::server::db::users;

    as_user(async |ctx, user| Ok(users::system_prompt(&ctx.state.db, user.id).await?)).await
}

#[server(endpoint = "account/save_system_prompt")]
pub async fn save_system_prompt(system_prompt: String) -> Result<(), AppError> {
    use super::context::as_user;
    use crate::{model::chat::clean_system_prompt, server::db::users};

    as_user(async |ctx, user| {
        let prompt = clean_system_prompt(&system_prompt).map_err(AppError::Validation)?;
        users::set_system_prompt(&ctx.state.db, user.id, prompt.as_deref()).await?;
        Ok(())
    })
    .await
}
