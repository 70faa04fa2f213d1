//! Whether a call may go upstream, and what it holds while it does.

use std::sync::Arc;

use super::call::{Call, InputEstimate};
use crate::{
    error::AppError,
    server::{
        accounting::{CallOrigin, LedgerSlot},
        limits::{self, Hold, WorstCase},
        routing::RoutedKey,
        state::AppState,
    },
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
    match (&routed.plan, server_tool) {
        (Some(plan), Some(tool)) if !plan.allows_server_tools => {
            Err(Refusal::ServerToolNotInPlan {
                tool,
                plan: plan.name.clone(),
            })
        }
        _ => Ok(()),
    }
}

/// Takes a ledger slot, then reserves the worst case; the returned `Call`
/// owns both. The reservation runs in a task of its own: a caller dropped
/// while its transaction commits cannot lose it, because the task finishes
/// and hands the hold to a guard that gives it back unless a `Call` takes
/// it. So a caller dropped at any point either holds nothing or its hold
/// is given back.
pub async fn admit(state: &AppState, admission: Admission) -> Result<Call, Refusal> {
    let slot = state.ledger.slot().await;
    let worst = admission
        .worst
        .filter(|_| limits::needs_hold(&admission.routed));
    let Some(worst) = worst else {
        return Ok(Call::new(state.clone(), admission, None, slot));
    };
    let task_state = state.clone();
    let routed = admission.routed.clone();
    let user_id = admission.origin.user_id;
    let model = admission.model.clone();
    let reserving = tokio::spawn(async move {
        let hold = limits::reserve_call(&task_state, user_id, &routed, &model, worst).await?;
        Ok::<_, AppError>(Reserved {
            state: task_state,
            held: Some((hold, slot)),
        })
    });
    let reserved = match reserving.await {
        Ok(reserved) => reserved.map_err(Refusal::Limit)?,
        Err(err) => {
            tracing::error!(error = %err, "the reservation task failed");
            return Err(Refusal::Limit(AppError::Internal));
        }
    };
    let (hold, slot) = reserved.take();
    Ok(Call::new(state.clone(), admission, hold, slot))
}

/// A reservation on its way to its `Call`, given back if dropped first.
struct Reserved {
    state: AppState,
    held: Option<(Option<Hold>, LedgerSlot)>,
}

impl Reserved {
    fn take(mut self) -> (Option<Hold>, LedgerSlot) {
        self.held
            .take()
            .expect("a reservation is taken once, by its call")
    }
}

impl Drop for Reserved {
    fn drop(&mut self) {
        if let Some((Some(hold), slot)) = self.held.take() {
            self.state.ledger.release(hold, slot);
        }
    }
}
