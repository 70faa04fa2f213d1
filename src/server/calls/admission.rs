//! What a call asks to be admitted with, and the plan's rules it must
//! pass before anything is reserved (`admit` reserves).

use std::sync::Arc;

use bytes::Bytes;

use super::estimate;
use crate::{
    error::AppError,
    server::{accounting::CallOrigin, limits::WorstCase, payer::RoutedKey},
};

/// Why a call was refused before it left keyward. Each front door (chat,
/// gateway) words it in its own shape.
#[derive(Debug)]
pub enum Refusal {
    /// The plan (platform key) does not include the model.
    ModelNotInPlan { model: String, allowed: Vec<String> },
    /// The plan does not allow Anthropic's server tools on the platform key.
    ServerToolNotInPlan { tool: String, plan: String },
    /// A limit or cap; the error names it and when it resets.
    Limit(AppError),
}

/// Everything admission needs to know about one call.
pub struct Admission {
    pub routed: Arc<RoutedKey>,
    pub origin: CallOrigin,
    pub model: String,
    /// The most the call can use; reserved when the key's rules ask for it.
    pub worst: Option<WorstCase>,
    /// The input to bill if the call ends before Anthropic reports it.
    pub input: InputEstimate,
    /// Whether the reply streams; if not, the `max_tokens` going upstream
    /// is billed when the reply's usage never arrives.
    pub stream: bool,
    pub max_tokens: Option<i64>,
    /// The extended-thinking budget, if the call thinks first: Anthropic
    /// bills the whole thinking, though only a summary of it streams, so a
    /// stream that ends without usage is billed at least this.
    pub thinking_budget: Option<i64>,
}

/// The plan's rule on models (on the platform key, the plan's; on a
/// user's key, any).
pub fn check_model(routed: &RoutedKey, model: &str) -> Result<(), Refusal> {
    if routed.allows_model(model) {
        return Ok(());
    }
    Err(Refusal::ModelNotInPlan {
        model: model.to_owned(),
        allowed: routed.allowed_models(),
    })
}

/// The plan's rule on Anthropic's server tools (`server_tool`: the first
/// one the request declares).
pub fn check_server_tools(routed: &RoutedKey, server_tool: Option<String>) -> Result<(), Refusal> {
    match (routed.plan(), server_tool) {
        (Some(plan), Some(tool)) if !plan.allows_server_tools => {
            Err(Refusal::ServerToolNotInPlan {
                tool,
                plan: plan.name.clone(),
            })
        }
        _ => Ok(()),
    }
}

/// The input a call is billed for when Anthropic never reported it.
#[derive(Debug)]
pub enum InputEstimate {
    /// Estimated at admission (the call reserved).
    Known(i64),
    /// The request body, estimated only if it comes to that: a call on a
    /// user's own key without caps is not parsed on the way out.
    FromBody(Bytes),
}

impl InputEstimate {
    pub(super) fn tokens(&self) -> i64 {
        match self {
            InputEstimate::Known(tokens) => *tokens,
            InputEstimate::FromBody(body) => serde_json::from_slice(body)
                .map(|body| estimate::request_input_tokens(&body))
                // Not JSON after all: every byte could be a token.
                .unwrap_or(body.len() as i64),
        }
    }
}
