//! Signup and login server functions (logout is a plain `POST /logout`).

use leptos::prelude::*;

use crate::{
    error::AppError,
    model::{SecretInput, UserView},
};

/// Creates an account and logs it in.
#[server(endpoint = "signup")]
pub async fn signup(email: String, password: SecretInput) -> Result<UserView, AppError> {
    use super::context::{request_context, session, with_status};
    use crate::server::auth;

    with_status(
        async {
            let ctx = request_context()?;
            let user = auth::signup(&ctx.state, &email, password.into_secret(), &ctx.ip).await?;
            let session = session().await?;
            auth::start_session(&session, &user, ctx.state.clock.now_ms())
                .await
                .map_err(|_| AppError::Internal)?;
            leptos_axum::redirect("/chat");
            Ok(user.to_view())
        }
        .await,
    )
}

#[server(endpoint = "login")]
pub async fn login(email: String, password: SecretInput) -> Result<UserView, AppError> {
    use super::context::{request_context, session, with_status};
    use crate::server::auth;

    with_status(
        async {
            let ctx = request_context()?;
            let user = auth::login(&ctx.state, &email, password.into_secret(), &ctx.ip).await?;
            let session = session().await?;
            auth::start_session(&session, &user, ctx.state.clock.now_ms())
                .await
                .map_err(|_| AppError::Internal)?;
            leptos_axum::redirect("/chat");
            Ok(user.to_view())
        }
        .await,
    )
}
