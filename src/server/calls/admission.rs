//! Whether a call may go upstream, and what it holds while it does.

use std::sync::Arc;

use super::call::{Call, InputEstimate};
use crate::{
    error::AppError,
    server::{
        accounting::{CallOrigin, LedgerSlot, ReserveError, Reserved},
        limits::{self, WorstCase},
        routing::{Payer, RoutedKey},
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

/// Takes a ledger slot, then reserves the worst case; the returned `Call`
/// owns both. A caller dropped at any await either holds nothing or its
/// hold is given back: the books writer (platform key) or a task of its own
/// (caps on a user's key) takes the reservation whatever happens to the
/// caller, and hands it over in a guard that gives it back unless a `Call`
/// takes it.
pub async fn admit(state: &AppState, admission: Admission) -> Result<Call, Refusal> {
    let Ok(slot) = state.ledger.slot(admission.origin.user_id).await else {
        return Err(Refusal::Limit(AppError::Unavailable(
            "keyward has too many calls in flight right now. Try again in a moment.".into(),
        )));
    };
    let worst = admission
        .worst
        .filter(|_| limits::needs_hold(&admission.routed));
    let Some(worst) = worst else {
        return Ok(Call::new(state.clone(), admission, None, slot));
    };
    let user_id = admission.origin.user_id;
    let reserved = match &admission.routed.payer {
        Payer::Platform { plan, .. } => {
            let ask = limits::platform_ask(state, user_id, plan, worst);
            let now_ms = ask.now_ms;
            match state.ledger.reserve(ask, slot).await {
                Ok(reserved) => reserved,
                Err(ReserveError::Refused(refusal)) => {
                    return Err(Refusal::Limit(limits::limit_refused(refusal, now_ms)))
                }
                Err(ReserveError::Unavailable) => {
                    return Err(Refusal::Limit(AppError::DatabaseUnavailable))
                }
            }
        }
        Payer::OwnKey { .. } => hold_own_key(state, &admission, worst, slot).await?,
    };
    let (hold, slot) = reserved.take();
    Ok(Call::new(state.clone(), admission, hold, slot))
}

/// Holds the worst case against the caps on the user's own key, in a task
/// of its own: a caller dropped while the hold commits cannot lose it.
async fn hold_own_key(
    state: &AppState,
    admission: &Admission,
    worst: WorstCase,
    slot: LedgerSlot,
) -> Result<Reserved, Refusal> {
    let task_state = state.clone();
    let routed = admission.routed.clone();
    let user_id = admission.origin.user_id;
    let model = admission.model.clone();
    let holding = tokio::spawn(async move {
        let hold = limits::hold_own_key(&task_state, user_id, &routed, &model, worst).await?;
        Ok::<_, AppError>(Reserved::new(task_state.ledger.clone(), hold, slot))
    });
    match holding.await {
        Ok(reserved) => reserved.map_err(Refusal::Limit),
        Err(err) => {
            tracing::error!(error = %err, "the hold task failed");
            Err(Refusal::Limit(AppError::Internal))
        }
    }
}
