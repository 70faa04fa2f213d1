//! What a refused call tells the user: which limit, how much was used, when
//! it resets, and what they can do about it.

use crate::{
    error::AppError,
    model::caps::format_usd_amount,
    server::{
        clock::{human_duration, next_utc_midnight},
        db::{own_key_usage::CapRefusal, usage::Refusal},
    },
};

const ADD_KEY: &str =
    "Add your own Anthropic API key in Settings to keep chatting without these limits.";
const CHANGE_CAPS: &str = "You can raise or remove your caps in Settings.";

/// A free-tier limit on the platform key refused the call.
pub(super) fn limit_error(refusal: Refusal, now: i64) -> AppError {
    let until_midnight = next_utc_midnight(now) - now;
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
    limit_reached(message, retry_after_ms)
}

/// A cap the user set on their own key refused the call (`tokens` and
/// `cost` are the call's worst case).
pub(super) fn cap_error(refusal: CapRefusal, tokens: i64, cost: i64, now: i64) -> AppError {
    let until_midnight = next_utc_midnight(now) - now;
    let resets = format!(
        "Your caps reset at 00:00 UTC (in {}).",
        human_duration(until_midnight)
    );
    let message = match refusal {
        CapRefusal::Tokens { cap, used } => format!(
            "This call could use up to {tokens} tokens, which would go over the daily cap of {cap} tokens you set for your own key \
             ({used} used today). {resets} {CHANGE_CAPS}"
        ),
        CapRefusal::Spend { cap, used } => format!(
            "This call could cost up to {}, which would go over the daily spending cap of {} you set for your own key \
             ({} spent today). {resets} {CHANGE_CAPS}",
            format_usd_amount(cost),
            format_usd_amount(cap),
            format_usd_amount(used)
        ),
    };
    limit_reached(message, until_midnight)
}

/// A spending cap cannot be kept on a model keyward has no price for.
pub(super) fn unpriced_model(model: &str) -> AppError {
    AppError::Validation(format!(
        "keyward has no price for the model {model}, so it cannot keep your daily spending cap. \
         Use a Claude Opus, Sonnet or Haiku 4 model, or remove the spending cap in Settings."
    ))
}

fn limit_reached(message: String, retry_after_ms: i64) -> AppError {
    AppError::LimitReached {
        message,
        retry_after_secs: (retry_after_ms.max(1000) as u64).div_ceil(1000),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::clock::DAY_MS;

    const SIX_PM: i64 = 20 * DAY_MS + 18 * 3_600_000;

    #[test]
    fn messages_name_the_limit_and_the_reset() {
        let err = limit_error(Refusal::RequestsPerDay { limit: 50 }, SIX_PM);
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
                oldest_at: SIX_PM - 45_000,
            },
            SIX_PM,
        );
        assert!(err.to_string().contains("10 requests per minute"));
        assert!(err.to_string().contains("Try again in 15 s"), "{err}");
    }

    #[test]
    fn cap_messages_name_the_cap_the_use_and_the_reset() {
        let err = cap_error(
            CapRefusal::Tokens {
                cap: 10_000,
                used: 8_000,
            },
            4_105,
            0,
            SIX_PM,
        );
        let text = err.to_string();
        assert!(text.contains("up to 4105 tokens"), "{text}");
        assert!(text.contains("daily cap of 10000 tokens"), "{text}");
        assert!(text.contains("(8000 used today)"), "{text}");
        assert!(text.contains("00:00 UTC (in 6 h 0 min)"), "{text}");
        assert!(text.contains("Settings"), "{text}");
        assert!(matches!(
            err,
            AppError::LimitReached {
                retry_after_secs: 21_600,
                ..
            }
        ));

        let text = cap_error(
            CapRefusal::Spend {
                cap: 2_500_000,
                used: 2_480_000,
            },
            5_000,
            21_730,
            SIX_PM,
        )
        .to_string();
        assert!(text.contains("cost up to $0.02173"), "{text}");
        assert!(text.contains("spending cap of $2.50"), "{text}");
        assert!(text.contains("($2.48 spent today)"), "{text}");
    }
}
