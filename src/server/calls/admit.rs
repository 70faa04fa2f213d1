//! Admission: a ledger slot, then the reservation of the worst case; the
//! `Call` it hands back owns both from the instant they exist.

use super::{
    admission::{Admission, Refusal},
    call::Call,
};
use crate::{
    error::AppError,
    model::caps::OwnKeyCaps,
    server::{
        accounting::{LedgerSlot, ReserveError, Reserved},
        limits::{self, WorstCase},
        payer::Payer,
        state::AppState,
    },
};

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
            let ask = limits::platform_ask(state.clock.now_ms(), user_id, plan, worst);
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
        Payer::OwnKey { caps, .. } => hold_own_key(state, &admission, *caps, worst, slot).await?,
    };
    let (hold, slot) = reserved.take();
    Ok(Call::new(state.clone(), admission, hold, slot))
}

/// Holds the worst case against the caps on the user's own key, in a task
/// of its own: a caller dropped while the hold commits cannot lose it.
async fn hold_own_key(
    state: &AppState,
    admission: &Admission,
    caps: OwnKeyCaps,
    worst: WorstCase,
    slot: LedgerSlot,
) -> Result<Reserved, Refusal> {
    let task_state = state.clone();
    let user_id = admission.origin.user_id;
    let model = admission.model.clone();
    let holding = tokio::spawn(async move {
        let call = limits::OwnKeyCall {
            user_id,
            caps,
            model: &model,
            worst,
            now_ms: task_state.clock.now_ms(),
        };
        let tag = task_state.instance.tag();
        let hold = limits::hold_own_key(&task_state.db, call, tag).await?;
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
