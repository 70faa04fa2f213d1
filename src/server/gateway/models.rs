//! `GET /v1/models`: the models this caller may use, in Anthropic's list shape.

use axum::{
    extract::{Path, State},
    http::HeaderMap,
    response::{IntoResponse, Response},
    Json,
};
use serde_json::{json, Value};

use super::{auth, error::GatewayError};
use crate::{model::models, server::state::AppState};

fn model_json(id: &str) -> Value {
    json!({
        "type": "model",
        "id": id,
        "display_name": models::label(id),
        "created_at": "2025-01-01T00:00:00Z",
    })
}

async fn allowed(state: &AppState, headers: &HeaderMap) -> Result<Vec<String>, GatewayError> {
    let principal = auth::authenticate(state, headers).await?;
    Ok(principal.route.clone()?.allowed_models())
}

pub async fn list_models(State(state): State<AppState>, headers: HeaderMap) -> Response {
    match allowed(&state, &headers).await {
        Err(err) => err.into_response(),
        Ok(ids) => Json(json!({
            "data": ids.iter().map(|id| model_json(id)).collect::<Vec<_>>(),
            "has_more": false,
            "first_id": ids.first(),
            "last_id": ids.last(),
        }))
        .into_response(),
    }
}

pub async fn get_model(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    match allowed(&state, &headers).await {
        Err(err) => err.into_response(),
        Ok(ids) if ids.iter().any(|m| models::same_model(m, &id)) => {
            Json(model_json(&id)).into_response()
        }
        Ok(_) => {
            GatewayError::not_found(format!("model: {id} is not available to you")).into_response()
        }
    }
}
