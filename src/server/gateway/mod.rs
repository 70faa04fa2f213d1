//! The Anthropic-compatible gateway under `/v1`, authenticated by personal
//! tokens. It shares routing, limits and the ledger with the chat UI; it
//! has no session, CSRF or page layers (it is an API for programs).

mod auth;
mod error;
mod messages;
mod models;
mod passthrough;
mod relay;
mod request;

use axum::{
    middleware::from_fn_with_state,
    routing::{any, get, post},
    Router,
};

pub use error::GatewayError;

use super::{metrics, state::AppState};

pub fn router(state: &AppState) -> Router<AppState> {
    Router::new()
        .route("/v1/messages", post(messages::create_message))
        .route("/v1/messages/count_tokens", post(messages::count_tokens))
        .route("/v1/models", get(models::list_models))
        .route("/v1/models/{id}", get(models::get_model))
        .route("/v1/{*rest}", any(not_found))
        .layer(from_fn_with_state(
            state.metrics.clone(),
            metrics::track_http,
        ))
}

async fn not_found() -> GatewayError {
    GatewayError::not_found(
        "keyward serves /v1/messages, /v1/messages/count_tokens and /v1/models.",
    )
}
