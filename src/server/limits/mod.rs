//! Limits on a call before it goes upstream: on the platform key the plan's
//! free-tier limits, on a user's own key the daily caps the user set. Either
//! way the call's worst case is reserved atomically in the database first;
//! the ledger writer settles it to the real use, and a call that never
//! started gives it back.

mod refusals;

use crate::{
    error::AppError,
    model::models::{self, TokenCounts},
    server::{
        clock::utc_day,
        db::{
            own_key_usage::{self, CapHold},
            plans::Plan,
            usage::{self, Limits, Reservation},
        },
        routing::RoutedKey,
        state::AppState,
    },
};

/// A call's reserved worst case, until its ledger row is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hold {
    /// Against the plan's limits on the platform key.
    Platform(Reservation),
    /// Against the user's caps on their own key.
    OwnKey(CapHold),
}

/// The most one call can use: its estimated input and the `max_tokens`
/// that goes upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WorstCase {
    pub input_tokens: i64,
    pub output_tokens: i64,
}

impl WorstCase {
    pub fn tokens(self) -> i64 {
        self.input_tokens + self.output_tokens
    }

    /// The highest price the call can have: every input token billed at
    /// the cache-write rate, the dearest input rate there is.
    fn cost_micro_usd(self, model: &str) -> i64 {
        let tokens = TokenCounts {
            cache_creation: self.input_tokens.max(0) as u64,
            output: self.output_tokens.max(0) as u64,
            ..TokenCounts::default()
        };
        models::cost_micro_usd(model, tokens) as i64
    }
}

/// A rough, generous token estimate for text (about 4 characters a token),
/// plus a few tokens of framing per message.
pub fn estimate_input_tokens(texts: &[&str]) -> i64 {
    texts
        .iter()
        .map(|t| (t.chars().count() as i64 + 3) / 4 + 8)
        .sum::<i64>()
        .max(1)
}

/// Whether a call on `routed` must reserve before it starts: always on the
/// platform key, on a user's key only when the user set caps.
pub fn needs_hold(routed: &RoutedKey) -> bool {
    routed.plan.is_some() || routed.caps.is_set()
}

/// Reserves `worst` for one call of `model` on the key `routed` chose, or
/// refuses it with a message naming the limit and when it resets.
pub async fn reserve_call(
    state: &AppState,
    user_id: i64,
    routed: &RoutedKey,
    model: &str,
    worst: WorstCase,
) -> Result<Option<Hold>, AppError> {
    if let Some(plan) = &routed.plan {
        let reservation = reserve_platform_call(state, user_id, plan, worst.tokens()).await?;
        return Ok(Some(Hold::Platform(reservation)));
    }
    let caps = routed.caps;
    if !caps.is_set() {
        return Ok(None);
    }
    if caps.micro_usd_per_day.is_some() && models::find(model).is_none() {
        return Err(refusals::unpriced_model(model));
    }
    let now = state.clock.now_ms();
    let cost = worst.cost_micro_usd(model);
    match own_key_usage::hold(
        &state.db,
        user_id,
        &utc_day(now),
        worst.tokens(),
        cost,
        caps,
    )
    .await?
    {
        Ok(hold) => Ok(Some(Hold::OwnKey(hold))),
        Err(refusal) => Err(refusals::cap_error(refusal, worst.tokens(), cost, now)),
    }
}

async fn reserve_platform_call(
    state: &AppState,
    user_id: i64,
    plan: &Plan,
    tokens: i64,
) -> Result<Reservation, AppError> {
    let now = state.clock.now_ms();
    let limits = Limits {
        requests_per_minute: plan.requests_per_minute,
        requests_per_day: plan.requests_per_day,
        tokens_per_day: plan.tokens_per_day,
    };
    match usage::reserve(&state.db, user_id, &utc_day(now), now, tokens, limits).await? {
        Ok(reservation) => Ok(reservation),
        Err(refusal) => Err(refusals::limit_error(refusal, now)),
    }
}

/// Gives back a hold whose call never started.
pub async fn release_unused(state: &AppState, hold: &Hold) {
    let released = match hold {
        Hold::Platform(reservation) => usage::release(&state.db, reservation).await,
        Hold::OwnKey(hold) => own_key_usage::release(&state.db, hold).await,
    };
    if let Err(err) = released {
        tracing::error!(error = %err, "could not release a reservation");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn estimates_are_generous() {
        assert_eq!(estimate_input_tokens(&["abcd"]), 9);
        assert!(estimate_input_tokens(&["x".repeat(4000).as_str()]) >= 1000);
    }

    #[test]
    fn the_worst_case_bills_input_at_the_cache_write_rate() {
        let worst = WorstCase {
            input_tokens: 1_000,
            output_tokens: 4_096,
        };
        assert_eq!(worst.tokens(), 5_096);
        // Haiku: 1000 × $1.25/M + 4096 × $5/M = 1250 + 20480 µ$.
        assert_eq!(worst.cost_micro_usd("claude-haiku-4-5"), 21_730);
        assert_eq!(worst.cost_micro_usd("claude-opus-4-7"), 6_250 + 102_400);
    }
}
