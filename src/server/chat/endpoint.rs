//! `POST /chat/send`: the chat page's streaming endpoint (NDJSON over HTTP,
//! behind the cookie session and the same-origin check).

use axum::{
    body::Body,
    extract::{rejection::JsonRejection, State},
    http::header,
    response::{IntoResponse, Response},
    Extension, Json,
};

use super::turn::start_turn;
use crate::{
    error::AppError,
    model::chat::ChatRequest,
    server::{auth::CurrentUser, state::AppState},
};

pub async fn send_handler(
    State(state): State<AppState>,
    Extension(CurrentUser(user)): Extension<CurrentUser>,
    request: Result<Json<ChatRequest>, JsonRejection>,
) -> Response {
    let Some(user) = user else {
        return AppError::Unauthenticated.into_response();
    };
    let Ok(Json(request)) = request else {
        return AppError::Validation("The chat request was malformed.".into()).into_response();
    };
    match start_turn(state, user, request).await {
        Ok(events) => (
            [
                (header::CONTENT_TYPE, "application/x-ndjson; charset=utf-8"),
                (header::CACHE_CONTROL, "no-store"),
                (header::HeaderName::from_static("x-accel-buffering"), "no"),
            ],
            Body::from_stream(events),
        )
            .into_response(),
        Err(err) => err.into_response(),
    }
}
