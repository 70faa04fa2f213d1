//! What one call costs. Together with the list prices in `models::MODELS`
//! this is the whole price table keyward bills by.
//!
//! Source: Anthropic's pricing page,
//! <https://platform.claude.com/docs/en/about-claude/pricing>.
//!
//! Not priced here, on purpose:
//! - web fetch has no per-use fee; the fetched content is billed as input
//!   tokens, which the token counts already hold;
//! - code execution is billed by container time, not per use, and Anthropic
//!   does not report that time per call.

use super::models::{self, TokenCounts};

/// The day the numbers in this file and in `models::MODELS` were last
/// compared with Anthropic's pricing page.
pub const PRICES_CHECKED: &str = "2026-12-01";

/// Each kind of unit's price, in percent of the model's list price (the
/// input-side kinds of the input price, `output` of the output price). A list
/// price in USD per MTok times a percentage is hundredths of a micro-dollar
/// per token, so every rate stays an exact integer.
struct Percentages {
    input: u128,
    cache_write_5m: u128,
    cache_write_1h: u128,
    cache_read: u128,
    output: u128,
}

const STANDARD: Percentages = Percentages {
    input: 100,
    cache_write_5m: 125,
    cache_write_1h: 200,
    cache_read: 10,
    output: 100,
};

/// Long-context rates: every input-side rate doubles (the cache multipliers
/// then apply to the doubled input price) and output costs 1.5×.
const LONG_CONTEXT: Percentages = Percentages {
    input: 200,
    cache_write_5m: 250,
    cache_write_1h: 400,
    cache_read: 20,
    output: 150,
};

/// Long-context rates apply when a call's whole input (uncached, written
/// and read tokens) is more than this.
pub const LONG_CONTEXT_ABOVE_TOKENS: u64 = 200_000;

/// $10 per 1,000 searches.
pub const WEB_SEARCH_MICRO_USD: u64 = 10_000;

/// Costs are stored in signed 64-bit columns; a hostile count must not wrap
/// into a negative cost there.
const MAX_COST_MICRO_USD: u64 = i64::MAX as u64;

/// Whether `model` charges long-context rates above the threshold. Only
/// Sonnet 4 and 4.5 do; Sonnet 4.6 and Opus 4.6+ bill their 1M context at
/// standard rates.
fn has_long_context_rates(model: &str) -> bool {
    matches!(
        model,
        "claude-sonnet-4-0" | "claude-sonnet-4-20250514" | "claude-sonnet-4-5"
    ) || model.starts_with("claude-sonnet-4-5-")
}

/// Cost in micro-USD, exact: computed in hundredths of a micro-dollar in
/// `u128` (no count can overflow it), rounded half up once, capped at
/// `i64::MAX`. An unknown model costs 0.
pub fn cost_micro_usd(model: &str, tokens: TokenCounts) -> u64 {
    let Some(price) = models::find(model) else {
        return 0;
    };
    let rates = if has_long_context_rates(model)
        && total_input(&tokens) > LONG_CONTEXT_ABOVE_TOKENS.into()
    {
        &LONG_CONTEXT
    } else {
        &STANDARD
    };
    let input = u128::from(price.input_usd_per_mtok);
    let output = u128::from(price.output_usd_per_mtok);
    let centi = u128::from(tokens.input) * input * rates.input
        + u128::from(tokens.cache_creation) * input * rates.cache_write_5m
        + u128::from(tokens.cache_creation_1h) * input * rates.cache_write_1h
        + u128::from(tokens.cache_read) * input * rates.cache_read
        + u128::from(tokens.output) * output * rates.output
        + u128::from(tokens.web_search_requests) * u128::from(WEB_SEARCH_MICRO_USD) * 100;
    let micro = (centi + 50) / 100;
    u64::try_from(micro).map_or(MAX_COST_MICRO_USD, |m| m.min(MAX_COST_MICRO_USD))
}

/// What prompt caching saved on a call, in micro-USD: its cost with every
/// cached token (read or written) billed as plain input, less its cost.
/// Negative on a call that only wrote to the cache (writes cost more).
pub fn caching_saved_micro_usd(model: &str, tokens: TokenCounts) -> i64 {
    let uncached = TokenCounts {
        input: tokens
            .input
            .saturating_add(tokens.cache_creation)
            .saturating_add(tokens.cache_creation_1h)
            .saturating_add(tokens.cache_read),
        cache_creation: 0,
        cache_creation_1h: 0,
        cache_read: 0,
        ..tokens
    };
    let signed = |cost: u64| i64::try_from(cost).unwrap_or(i64::MAX);
    signed(cost_micro_usd(model, uncached)).saturating_sub(signed(cost_micro_usd(model, tokens)))
}

fn total_input(tokens: &TokenCounts) -> u128 {
    u128::from(tokens.input)
        + u128::from(tokens.cache_creation)
        + u128::from(tokens.cache_creation_1h)
        + u128::from(tokens.cache_read)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(values: [u64; 6]) -> TokenCounts {
        TokenCounts {
            input: values[0],
            output: values[1],
            cache_creation: values[2],
            cache_creation_1h: values[3],
            cache_read: values[4],
            web_search_requests: values[5],
        }
    }

    proptest::proptest! {
        /// Any counts, however large: no overflow, and one more token of
        /// any kind never makes a call cheaper.
        #[test]
        fn cost_never_overflows_and_grows_with_every_count(
            // Real counts (up to and past the 200k long-context threshold),
            // and now and then a huge one.
            values in proptest::array::uniform6(proptest::prop_oneof![
                9 => 0u64..1_000_000,
                1 => proptest::prelude::any::<u64>(),
            ]),
            which in 0usize..6,
            extra in 1u64..1_000_000,
            model in proptest::sample::select(vec!["claude-haiku-4-5", "claude-sonnet-4-5-20250929", "claude-opus-4-7", "unknown"]),
        ) {
            let base = cost_micro_usd(model, counts(values));
            let mut more = values;
            more[which] = more[which].saturating_add(extra);
            let higher = cost_micro_usd(model, counts(more));
            proptest::prop_assert!(higher >= base);
            proptest::prop_assert!(base <= MAX_COST_MICRO_USD);
            // A known model's price grows with any token (and web search)
            // until the cap.
            if model != "unknown" && base < MAX_COST_MICRO_USD && extra >= 1_000 {
                proptest::prop_assert!(higher > base, "{} then {}", base, higher);
            }
        }
    }

    const SONNET_4_5: &str = "claude-sonnet-4-5-20250929";

    #[test]
    fn five_minute_cache_writes_cost_1_25x_input() {
        let t = TokenCounts {
            cache_creation: 1_000,
            ..TokenCounts::default()
        };
        assert_eq!(cost_micro_usd("claude-haiku-4-5", t), 1_250);
        assert_eq!(cost_micro_usd("claude-sonnet-4-6", t), 3_750);
        assert_eq!(cost_micro_usd("claude-opus-4-7", t), 6_250);
    }

    #[test]
    fn one_hour_cache_writes_cost_2x_input() {
        let t = TokenCounts {
            cache_creation_1h: 1_000,
            ..TokenCounts::default()
        };
        assert_eq!(cost_micro_usd("claude-haiku-4-5", t), 2_000);
        assert_eq!(cost_micro_usd("claude-sonnet-4-6", t), 6_000);
        assert_eq!(cost_micro_usd("claude-opus-4-7", t), 10_000);
    }

    #[test]
    fn cache_reads_cost_a_tenth_of_input_and_the_sum_is_rounded_once() {
        let read = TokenCounts {
            cache_read: 1_000,
            ..TokenCounts::default()
        };
        assert_eq!(cost_micro_usd("claude-opus-4-7", read), 500);
        // Haiku: 5 reads = 0.5 µ$, 2 writes = 2.5 µ$: 3 µ$ together (4 if
        // each part were rounded on its own).
        let mixed = TokenCounts {
            cache_read: 5,
            cache_creation: 2,
            ..TokenCounts::default()
        };
        assert_eq!(cost_micro_usd("claude-haiku-4-5", mixed), 3);
    }

    #[test]
    fn long_context_rates_start_above_200k_input_tokens_on_sonnet_4_5() {
        let call = |input| TokenCounts {
            input,
            output: 1_000,
            ..TokenCounts::default()
        };
        // Below and at the threshold: $3 / $15.
        assert_eq!(cost_micro_usd(SONNET_4_5, call(199_999)), 599_997 + 15_000);
        assert_eq!(cost_micro_usd(SONNET_4_5, call(200_000)), 600_000 + 15_000);
        // Above: $6 / $22.50.
        assert_eq!(
            cost_micro_usd(SONNET_4_5, call(200_001)),
            1_200_006 + 22_500
        );
    }

    #[test]
    fn long_context_counts_cache_tokens_and_raises_cache_rates() {
        // 1 + 30k + 20k + 150k = 200,001 input tokens: over the threshold.
        let t = TokenCounts {
            input: 1,
            cache_creation: 30_000,
            cache_creation_1h: 20_000,
            cache_read: 150_000,
            output: 2,
            ..TokenCounts::default()
        };
        // $6 input, 5m writes 1.25 × $6, 1h writes 2 × $6, reads 0.1 × $6,
        // output $22.50.
        let expected = 6 + 225_000 + 240_000 + 90_000 + 45;
        assert_eq!(cost_micro_usd(SONNET_4_5, t), expected);
    }

    #[test]
    fn long_context_rates_apply_to_sonnet_4_and_4_5_only() {
        let t = TokenCounts {
            input: 200_001,
            output: 1_000,
            ..TokenCounts::default()
        };
        let long = 1_200_006 + 22_500;
        for id in [
            "claude-sonnet-4-0",
            "claude-sonnet-4-20250514",
            "claude-sonnet-4-5",
            "claude-sonnet-4-5-20250929",
        ] {
            assert_eq!(cost_micro_usd(id, t), long, "{id}");
        }
        let standard = 600_003 + 15_000;
        for id in ["claude-sonnet-4-6", "claude-sonnet-4-6-20260217"] {
            assert_eq!(cost_micro_usd(id, t), standard, "{id}");
        }
        for id in ["claude-opus-4-6", "claude-opus-4-7"] {
            assert_eq!(cost_micro_usd(id, t), 1_000_005 + 25_000, "{id}");
        }
    }

    #[test]
    fn caching_saves_nine_tenths_of_a_read_and_costs_a_quarter_more_to_write() {
        // Haiku: $1/M input. 10,000 tokens read: 10,000 µ$ uncached, 1,000 cached.
        let read = TokenCounts {
            input: 100,
            cache_read: 10_000,
            output: 50,
            ..TokenCounts::default()
        };
        assert_eq!(caching_saved_micro_usd("claude-haiku-4-5", read), 9_000);
        let written = TokenCounts {
            cache_creation: 4_000,
            ..TokenCounts::default()
        };
        assert_eq!(caching_saved_micro_usd("claude-haiku-4-5", written), -1_000);
        assert_eq!(
            caching_saved_micro_usd("claude-haiku-4-5", TokenCounts::default()),
            0
        );
    }

    #[test]
    fn web_searches_cost_a_cent_each() {
        let t = TokenCounts {
            input: 1_000,
            web_search_requests: 3,
            ..TokenCounts::default()
        };
        assert_eq!(cost_micro_usd("claude-sonnet-4-6", t), 3_000 + 30_000);
        assert_eq!(cost_micro_usd("unknown-model", t), 0);
    }

    #[test]
    fn huge_counts_are_exact_or_capped_never_wrapped() {
        // 10^18 Haiku tokens: 10^20 hundredths of a micro-dollar, past u64.
        let big = TokenCounts {
            input: 1_000_000_000_000_000_000,
            ..TokenCounts::default()
        };
        assert_eq!(
            cost_micro_usd("claude-haiku-4-5", big),
            1_000_000_000_000_000_000
        );
        let max = TokenCounts {
            input: u64::MAX,
            output: u64::MAX,
            cache_creation: u64::MAX,
            cache_creation_1h: u64::MAX,
            cache_read: u64::MAX,
            web_search_requests: u64::MAX,
        };
        for model in ["claude-opus-4-7", SONNET_4_5] {
            assert_eq!(cost_micro_usd(model, max), i64::MAX as u64);
        }
    }
}
