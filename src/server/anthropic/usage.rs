//! The usage Anthropic reports for a call (in `message_start`,
//! `message_delta` and JSON replies), and what it is billed as.

use serde::Deserialize;

use crate::model::models::TokenCounts;

/// Token counts as Anthropic reports them, with the nested `cache_creation`
/// and `server_tool_use` objects flattened. A field left out (or `null`) is 0.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(from = "WireUsage")]
pub struct Usage {
    pub input_tokens: u64,
    pub output_tokens: u64,
    /// Cache writes at both TTLs together.
    pub cache_creation_input_tokens: u64,
    /// The part of `cache_creation_input_tokens` written for one hour.
    pub cache_creation_1h_input_tokens: u64,
    pub cache_read_input_tokens: u64,
    pub web_search_requests: u64,
    pub web_fetch_requests: u64,
}

impl Usage {
    /// Folds in a later report. `message_delta` counts are cumulative, so the
    /// larger value wins; fields a report leaves out keep what we had.
    pub fn merge(&mut self, later: &Usage) {
        let max = |a: &mut u64, b: u64| *a = (*a).max(b);
        max(&mut self.input_tokens, later.input_tokens);
        max(&mut self.output_tokens, later.output_tokens);
        max(
            &mut self.cache_creation_input_tokens,
            later.cache_creation_input_tokens,
        );
        max(
            &mut self.cache_creation_1h_input_tokens,
            later.cache_creation_1h_input_tokens,
        );
        max(
            &mut self.cache_read_input_tokens,
            later.cache_read_input_tokens,
        );
        max(&mut self.web_search_requests, later.web_search_requests);
        max(&mut self.web_fetch_requests, later.web_fetch_requests);
    }

    /// The counts as billed: the 1-hour writes are taken out of the total so
    /// no token is priced twice.
    pub fn token_counts(&self) -> TokenCounts {
        TokenCounts {
            input: self.input_tokens,
            output: self.output_tokens,
            cache_creation: self
                .cache_creation_input_tokens
                .saturating_sub(self.cache_creation_1h_input_tokens),
            cache_creation_1h: self.cache_creation_1h_input_tokens,
            cache_read: self.cache_read_input_tokens,
            web_search_requests: self.web_search_requests,
        }
    }
}

/// `usage` as it is on the wire. Everything is optional because Anthropic
/// leaves fields out of (or sends `null` in) partial reports.
#[derive(Deserialize)]
struct WireUsage {
    input_tokens: Option<u64>,
    output_tokens: Option<u64>,
    cache_creation_input_tokens: Option<u64>,
    cache_read_input_tokens: Option<u64>,
    cache_creation: Option<WireCacheCreation>,
    server_tool_use: Option<WireServerToolUse>,
}

#[derive(Deserialize)]
struct WireCacheCreation {
    ephemeral_5m_input_tokens: Option<u64>,
    ephemeral_1h_input_tokens: Option<u64>,
}

#[derive(Deserialize)]
struct WireServerToolUse {
    web_search_requests: Option<u64>,
    web_fetch_requests: Option<u64>,
}

impl From<WireUsage> for Usage {
    fn from(wire: WireUsage) -> Self {
        let (write_5m, write_1h) = wire.cache_creation.map_or((0, 0), |c| {
            (
                c.ephemeral_5m_input_tokens.unwrap_or(0),
                c.ephemeral_1h_input_tokens.unwrap_or(0),
            )
        });
        let (searches, fetches) = wire.server_tool_use.map_or((0, 0), |s| {
            (
                s.web_search_requests.unwrap_or(0),
                s.web_fetch_requests.unwrap_or(0),
            )
        });
        Usage {
            input_tokens: wire.input_tokens.unwrap_or(0),
            output_tokens: wire.output_tokens.unwrap_or(0),
            // The total is never less than its parts, even in a report that
            // sends only the breakdown.
            cache_creation_input_tokens: wire
                .cache_creation_input_tokens
                .unwrap_or(0)
                .max(write_5m.saturating_add(write_1h)),
            cache_creation_1h_input_tokens: write_1h,
            cache_read_input_tokens: wire.cache_read_input_tokens.unwrap_or(0),
            web_search_requests: searches,
            web_fetch_requests: fetches,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_merges_cumulative_reports() {
        let mut usage = Usage {
            input_tokens: 25,
            output_tokens: 1,
            ..Usage::default()
        };
        usage.merge(&Usage {
            output_tokens: 15,
            ..Usage::default()
        });
        assert_eq!(
            usage,
            Usage {
                input_tokens: 25,
                output_tokens: 15,
                ..Usage::default()
            }
        );
    }

    fn usage(json: &str) -> Usage {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn one_hour_cache_writes_in_nested_usage_cost_2x_input() {
        let reported = usage(
            r#"{"input_tokens":10,"output_tokens":1,"cache_read_input_tokens":0,
                "cache_creation_input_tokens":3000,
                "cache_creation":{"ephemeral_5m_input_tokens":1000,"ephemeral_1h_input_tokens":2000}}"#,
        );
        let tokens = reported.token_counts();
        assert_eq!(
            (tokens.cache_creation, tokens.cache_creation_1h),
            (1_000, 2_000)
        );
        // Sonnet: 10 × $3 + 1000 × $3.75 + 2000 × $6 + 1 × $15 per MTok.
        assert_eq!(
            crate::model::models::cost_micro_usd("claude-sonnet-4-6", tokens),
            30 + 3_750 + 12_000 + 15
        );
    }

    #[test]
    fn server_tool_use_is_read_and_only_searches_are_billed() {
        let reported = usage(
            r#"{"output_tokens":50,"server_tool_use":{"web_search_requests":2,"web_fetch_requests":1}}"#,
        );
        assert_eq!(
            (reported.web_search_requests, reported.web_fetch_requests),
            (2, 1)
        );
        let tokens = reported.token_counts();
        assert_eq!(tokens.web_search_requests, 2);
        // Haiku: 50 × $5/MTok plus two searches at a cent each; the fetch is free.
        assert_eq!(
            crate::model::models::cost_micro_usd("claude-haiku-4-5", tokens),
            250 + 20_000
        );
    }

    #[test]
    fn missing_or_null_usage_fields_are_zero() {
        assert_eq!(usage("{}"), Usage::default());
        assert_eq!(
            usage(
                r#"{"input_tokens":null,"output_tokens":7,"cache_creation":null,"server_tool_use":null,
                    "cache_creation_input_tokens":null,"cache_read_input_tokens":null}"#
            ),
            Usage {
                output_tokens: 7,
                ..Usage::default()
            }
        );
    }

    #[test]
    fn the_cache_write_total_covers_its_breakdown() {
        // A report with the breakdown but no total still bills every write once.
        let reported = usage(
            r#"{"cache_creation":{"ephemeral_5m_input_tokens":4,"ephemeral_1h_input_tokens":6}}"#,
        );
        assert_eq!(reported.cache_creation_input_tokens, 10);
        let tokens = reported.token_counts();
        assert_eq!((tokens.cache_creation, tokens.cache_creation_1h), (4, 6));
        // Built by hand with a part larger than the total: no underflow.
        let odd = Usage {
            cache_creation_input_tokens: 1,
            cache_creation_1h_input_tokens: 5,
            ..Usage::default()
        };
        assert_eq!(odd.token_counts().cache_creation, 0);
    }

    #[test]
    fn usage_merge_keeps_the_largest_ttl_and_tool_counts() {
        let mut total = usage(
            r#"{"input_tokens":9,"cache_creation_input_tokens":30,
                "cache_creation":{"ephemeral_5m_input_tokens":10,"ephemeral_1h_input_tokens":20},
                "server_tool_use":{"web_search_requests":1}}"#,
        );
        total.merge(&usage(
            r#"{"output_tokens":40,"server_tool_use":{"web_search_requests":3,"web_fetch_requests":2}}"#,
        ));
        assert_eq!(
            total,
            Usage {
                input_tokens: 9,
                output_tokens: 40,
                cache_creation_input_tokens: 30,
                cache_creation_1h_input_tokens: 20,
                cache_read_input_tokens: 0,
                web_search_requests: 3,
                web_fetch_requests: 2,
            }
        );
    }
}
