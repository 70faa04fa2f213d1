//! Limits on a call before it goes upstream: on the platform key the plan's
//! free-tier limits (asked of the books writer, which admits calls in
//! batches), on a user's own key the daily caps the user set. Either way
//! the call's worst case is reserved atomically in the database first;
//! the ledger writer settles it to the real use, and a call that never
//! left keyward gives it back (see `server::calls`).

mod count_window;
mod refusals;

pub use count_window::CountWindow;

use crate::{
    error::AppError,
    model::{
        caps::OwnKeyCaps,
        models::{self, TokenCounts},
    },
    server::{
        clock::utc_day,
        db::{
            own_key_usage::{self, CapHold},
            plans::Plan,
            reservations::Tag,
            reserve_many::Ask,
            usage::{Limits, Refusal, Reservation},
            Db,
        },
        payer::{Payer, RoutedKey},
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

impl Hold {
    /// Its row in `reservations`.
    pub fn reservation_id(&self) -> i64 {
        match self {
            Hold::Platform(reservation) => reservation.id,
            Hold::OwnKey(hold) => hold.reservation_id,
        }
    }

    /// Whose books it is in.
    pub fn user_id(&self) -> i64 {
        match self {
            Hold::Platform(reservation) => reservation.user_id,
            Hold::OwnKey(hold) => hold.user_id,
        }
    }
}

/// The most one call can use: its estimated input and the `max_tokens`
/// that goes upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WorstCase {
    pub input_tokens: i64,
    pub output_tokens: i64,
}

impl WorstCase {
    /// Both together; a client's huge `max_tokens` saturates, never wraps.
    pub fn tokens(self) -> i64 {
        self.input_tokens.saturating_add(self.output_tokens)
    }

    /// The highest price the call can have: every input token billed at
    /// the 1-hour cache-write rate, the dearest input rate there is (and
    /// at the long-context rates where the input is that long).
    fn cost_micro_usd(self, model: &str) -> i64 {
        let tokens = TokenCounts {
            cache_creation_1h: self.input_tokens.max(0) as u64,
            output: self.output_tokens.max(0) as u64,
            ..TokenCounts::default()
        };
        i64::try_from(models::cost_micro_usd(model, tokens)).unwrap_or(i64::MAX)
    }
}

/// Whether a call on `routed` must reserve before it starts: always on the
/// platform key, on a user's key only when the user set caps.
pub fn needs_hold(routed: &RoutedKey) -> bool {
    match &routed.payer {
        Payer::Platform { .. } => true,
        Payer::OwnKey { caps, .. } => caps.is_set(),
    }
}

/// What a platform call made at `now_ms` asks of its plan: one request
/// and its worst case.
pub fn platform_ask(now_ms: i64, user_id: i64, plan: &Plan, worst: WorstCase) -> Ask {
    let limits = Limits {
        requests_per_minute: plan.requests_per_minute,
        requests_per_day: plan.requests_per_day,
        tokens_per_day: plan.tokens_per_day,
    };
    Ask::new(user_id, utc_day(now_ms), now_ms, worst.tokens(), limits)
}

/// A refusal by the plan's limits, worded for the user: which limit, and
/// when it resets.
pub fn limit_refused(refusal: Refusal, now_ms: i64) -> AppError {
    refusals::limit_error(refusal, now_ms)
}

/// What a call on a user's own key is held to.
pub struct OwnKeyCall<'a> {
    pub user_id: i64,
    pub caps: OwnKeyCaps,
    pub model: &'a str,
    pub worst: WorstCase,
    /// When it is made.
    pub now_ms: i64,
}

/// Holds a call's worst case on a user's own key against the caps they
/// set, or refuses it with a message naming the cap and when it resets.
/// `None` when the user set no caps.
pub async fn hold_own_key(
    db: &Db,
    call: OwnKeyCall<'_>,
    tag: Tag<'_>,
) -> Result<Option<Hold>, AppError> {
    let OwnKeyCall {
        user_id,
        caps,
        model,
        worst,
        now_ms: now,
    } = call;
    if !caps.is_set() {
        return Ok(None);
    }
    if caps.micro_usd_per_day.is_some() && models::find(model).is_none() {
        return Err(refusals::unpriced_model(model));
    }
    let cost = worst.cost_micro_usd(model);
    match own_key_usage::hold(db, user_id, &utc_day(now), worst.tokens(), cost, caps, tag).await? {
        Ok(hold) => Ok(Some(Hold::OwnKey(hold))),
        Err(refusal) => Err(refusals::cap_error(refusal, worst.tokens(), cost, now)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_huge_max_tokens_saturates_the_worst_case() {
        let worst = WorstCase {
            input_tokens: 10,
            output_tokens: i64::MAX,
        };
        assert_eq!(worst.tokens(), i64::MAX);
    }

    #[test]
    fn the_worst_case_bills_input_at_the_one_hour_cache_write_rate() {
        let worst = WorstCase {
            input_tokens: 1_000,
            output_tokens: 4_096,
        };
        assert_eq!(worst.tokens(), 5_096);
        // Haiku: 1000 × $2/M + 4096 × $5/M = 2000 + 20480 µ$.
        assert_eq!(worst.cost_micro_usd("claude-haiku-4-5"), 22_480);
        assert_eq!(worst.cost_micro_usd("claude-opus-4-7"), 10_000 + 102_400);
    }
}
