//! What a server function needs to know about the request it serves.

use leptos::prelude::*;
use leptos_axum::ResponseOptions;
use tower_sessions::Session;

use crate::{
    error::AppError,
    server::{
        auth::{ClientIp, CurrentUser},
        db::users::UserRow,
        state::AppState,
    },
};

pub struct RequestContext {
    pub state: AppState,
    pub user: Option<UserRow>,
    pub ip: String,
}

pub fn request_context() -> Result<RequestContext, AppError> {
    let state = use_context::<AppState>().ok_or(AppError::Internal)?;
    let parts = use_context::<http::request::Parts>().ok_or(AppError::Internal)?;
    let user = parts
        .extensions
        .get::<CurrentUser>()
        .and_then(|u| u.0.clone());
    let ip = parts
        .extensions
        .get::<ClientIp>()
        .map(|ip| ip.0.clone())
        .unwrap_or_default();
    Ok(RequestContext { state, user, ip })
}

pub async fn session() -> Result<Session, AppError> {
    leptos_axum::extract::<Session>().await.map_err(|err| {
        tracing::error!(error = %err, "no session layer in front of a server function");
        AppError::Internal
    })
}

impl RequestContext {
    pub fn require_user(&self) -> Result<&UserRow, AppError> {
        self.user.as_ref().ok_or(AppError::Unauthenticated)
    }

    pub fn require_admin(&self) -> Result<&UserRow, AppError> {
        let user = self.require_user()?;
        if user.is_admin() {
            Ok(user)
        } else {
            Err(AppError::Forbidden)
        }
    }
}

/// Gives a failed server function the HTTP status that matches its error.
pub fn with_status<T>(result: Result<T, AppError>) -> Result<T, AppError> {
    if let Err(err) = &result {
        if let Some(options) = use_context::<ResponseOptions>() {
            options.set_status(err.status());
        }
    }
    result
}

/// A server function's body for the signed-in user: `body` gets the
/// request's context and the user; no user is 401, and a failure gets the
/// HTTP status that matches it.
pub async fn as_user<T>(
    body: impl AsyncFnOnce(&RequestContext, &UserRow) -> Result<T, AppError>,
) -> Result<T, AppError> {
    with_status(
        async {
            let ctx = request_context()?;
            let user = ctx.require_user()?;
            body(&ctx, user).await
        }
        .await,
    )
}

/// `as_user` for an admin: anyone else is 403, whatever the UI shows.
pub async fn as_admin<T>(
    body: impl AsyncFnOnce(&RequestContext, &UserRow) -> Result<T, AppError>,
) -> Result<T, AppError> {
    as_user(async |ctx, _| body(ctx, ctx.require_admin()?).await).await
}
