//! Free-tier limits on the platform key: reserve the worst case before a
//! call, settle to the real usage after, release when nothing was used.

use crate::{
    error::AppError,
    server::{
        clock::{human_duration, next_utc_midnight, utc_day},
        db::{
            plans::Plan,
            usage::{self, Limits, Refusal, Reservation},
        },
        state::AppState,
    },
};

/// A rough, generous token estimate for text (about 4 characters a token),
/// plus a few tokens of framing per message.
pub fn estimate_input_tokens(texts: &[&str]) -> i64 {
    texts
        .iter()
        .map(|t| (t.chars().count() as i64 + 3) / 4 + 8)
        .sum::<i64>()
        .max(1)
}

/// Reserves one platform call of at most `estimated_input + max_tokens` tokens.
pub async fn reserve_platform_call(
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
        Err(refusal) => Err(limit_error(refusal, now)),
    }
}

const ADD_KEY: &str =
    "Add your own Anthropic API key in Settings to keep chatting without these limits.";

fn limit_error(refusal: Refusal, now: i64) -> AppError {
    let midnight = next_utc_midnight(now);
    let until_midnight = midnight - now;
    let (message, retry_after_ms) = match refusal {
        Refusal::RequestsPerDay { limit } => (
            format!(
                "You have used all {limit} free requests for today. The daily limit resets at 00:00 UTC (in {}). {ADD_KEY}",
                human_duration(until_midnight)
            ),
            until_midnight,
        ),
        Refusal::TokensPerDay { limit } => (
            format!(
                "This message would go over today's free limit of {limit} tokens. The daily limit resets at 00:00 UTC (in {}). \
                 Shorter messages or a new conversation use fewer tokens. {ADD_KEY}",
                human_duration(until_midnight)
            ),
            until_midnight,
        ),
        Refusal::RequestsPerMinute { limit, oldest_at } => {
            let wait = (oldest_at + 60_000 - now).max(1_000);
            (
                format!(
                    "The free tier allows {limit} requests per minute (a rolling 60 seconds). Try again in {}. {ADD_KEY}",
                    human_duration(wait)
                ),
                wait,
            )
        }
    };
    AppError::LimitReached {
        message,
        retry_after_secs: (retry_after_ms.max(1000) as u64).div_ceil(1000),
    }
}

/// Gives back a reservation whose call never started.
pub async fn release_unused(state: &AppState, reservation: &Reservation) {
    if let Err(err) = usage::release(&state.db, reservation).await {
        tracing::error!(error = %err, "could not release a platform reservation");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_limit_and_the_reset() {
        let now = 20 * crate::server::clock::DAY_MS + 18 * 3_600_000;
        let err = limit_error(Refusal::RequestsPerDay { limit: 50 }, now);
        let text = err.to_string();
        assert!(text.contains("50 free requests"), "{text}");
        assert!(text.contains("00:00 UTC (in 6 h 0 min)"), "{text}");
        assert!(text.contains("own Anthropic API key"), "{text}");
        assert!(matches!(
            err,
            AppError::LimitReached {
                retry_after_secs: 21_600,
                ..
            }
        ));

        let err = limit_error(
            Refusal::RequestsPerMinute {
                limit: 10,
                oldest_at: now - 45_000,
            },
            now,
        );
        assert!(err.to_string().contains("10 requests per minute"));
        assert!(err.to_string().contains("Try again in 15 s"), "{err}");
    }

    #[test]
    fn estimates_are_generous() {
        assert_eq!(estimate_input_tokens(&["abcd"]), 9);
        assert!(estimate_input_tokens(&["x".repeat(4000).as_str()]) >= 1000);
    }
}
