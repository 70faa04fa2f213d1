//! Anthropic's streaming events, typed, and the usage they report.

use serde::Deserialize;

use super::sse::SseEvent;
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

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamEvent {
    MessageStart {
        id: String,
        model: String,
        usage: Usage,
    },
    ContentBlockStart {
        index: u32,
    },
    TextDelta {
        index: u32,
        text: String,
    },
    /// Tool input, thinking and other non-text deltas.
    OtherDelta {
        index: u32,
    },
    ContentBlockStop {
        index: u32,
    },
    MessageDelta {
        stop_reason: Option<String>,
        usage: Usage,
    },
    MessageStop,
    Ping,
    Error {
        kind: String,
        message: String,
    },
    /// An event type this version does not know; ignored, per Anthropic's guidance.
    Unknown {
        kind: String,
    },
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Wire {
    MessageStart {
        message: WireMessage,
    },
    ContentBlockStart {
        index: u32,
    },
    ContentBlockDelta {
        index: u32,
        delta: WireDelta,
    },
    ContentBlockStop {
        index: u32,
    },
    MessageDelta {
        delta: WireMessageDelta,
        #[serde(default)]
        usage: Usage,
    },
    MessageStop,
    Ping,
    Error {
        error: WireError,
    },
}

#[derive(Deserialize)]
struct WireMessage {
    #[serde(default)]
    id: String,
    #[serde(default)]
    model: String,
    #[serde(default)]
    usage: Usage,
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum WireDelta {
    TextDelta {
        text: String,
    },
    #[serde(other)]
    Other,
}

#[derive(Deserialize)]
struct WireMessageDelta {
    #[serde(default)]
    stop_reason: Option<String>,
}

#[derive(Deserialize)]
struct WireError {
    #[serde(rename = "type", default)]
    kind: String,
    #[serde(default)]
    message: String,
}

#[derive(Deserialize)]
struct TypeOnly {
    #[serde(rename = "type")]
    kind: String,
}

/// Types one SSE event. Malformed JSON is an error; unknown types are not.
pub fn parse_event(event: &SseEvent) -> Result<StreamEvent, serde_json::Error> {
    let wire = match serde_json::from_str::<Wire>(&event.data) {
        Ok(wire) => wire,
        Err(err) => {
            let kind = serde_json::from_str::<TypeOnly>(&event.data)
                .map_err(|_| err)?
                .kind;
            return Ok(StreamEvent::Unknown { kind });
        }
    };
    Ok(match wire {
        Wire::MessageStart { message } => StreamEvent::MessageStart {
            id: message.id,
            model: message.model,
            usage: message.usage,
        },
        Wire::ContentBlockStart { index } => StreamEvent::ContentBlockStart { index },
        Wire::ContentBlockDelta {
            index,
            delta: WireDelta::TextDelta { text },
        } => StreamEvent::TextDelta { index, text },
        Wire::ContentBlockDelta {
            index,
            delta: WireDelta::Other,
        } => StreamEvent::OtherDelta { index },
        Wire::ContentBlockStop { index } => StreamEvent::ContentBlockStop { index },
        Wire::MessageDelta { delta, usage } => StreamEvent::MessageDelta {
            stop_reason: delta.stop_reason,
            usage,
        },
        Wire::MessageStop => StreamEvent::MessageStop,
        Wire::Ping => StreamEvent::Ping,
        Wire::Error { error } => StreamEvent::Error {
            kind: error.kind,
            message: error.message,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::anthropic::sse::SseParser;

    fn event(data: &str) -> StreamEvent {
        parse_event(&SseEvent {
            event: "x".into(),
            data: data.into(),
        })
        .unwrap()
    }

    #[test]
    fn types_every_documented_event() {
        assert_eq!(
            event(
                r#"{"type":"message_start","message":{"id":"msg_1","model":"claude-haiku-4-5","usage":{"input_tokens":25,"output_tokens":1,"cache_read_input_tokens":7}}}"#
            ),
            StreamEvent::MessageStart {
                id: "msg_1".into(),
                model: "claude-haiku-4-5".into(),
                usage: Usage {
                    input_tokens: 25,
                    output_tokens: 1,
                    cache_read_input_tokens: 7,
                    ..Usage::default()
                }
            }
        );
        assert_eq!(
            event(
                r#"{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#
            ),
            StreamEvent::ContentBlockStart { index: 0 }
        );
        assert_eq!(
            event(
                r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hi"}}"#
            ),
            StreamEvent::TextDelta {
                index: 0,
                text: "Hi".into()
            }
        );
        assert_eq!(
            event(
                r#"{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{"}}"#
            ),
            StreamEvent::OtherDelta { index: 1 }
        );
        assert_eq!(
            event(r#"{"type":"content_block_stop","index":0}"#),
            StreamEvent::ContentBlockStop { index: 0 }
        );
        assert_eq!(
            event(
                r#"{"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":15}}"#
            ),
            StreamEvent::MessageDelta {
                stop_reason: Some("end_turn".into()),
                usage: Usage {
                    output_tokens: 15,
                    ..Usage::default()
                }
            }
        );
        assert_eq!(
            event(r#"{"type":"message_stop"}"#),
            StreamEvent::MessageStop
        );
        assert_eq!(event(r#"{"type": "ping"}"#), StreamEvent::Ping);
        assert_eq!(
            event(r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#),
            StreamEvent::Error {
                kind: "overloaded_error".into(),
                message: "Overloaded".into()
            }
        );
        assert_eq!(
            event(r#"{"type":"brand_new_event","x":1}"#),
            StreamEvent::Unknown {
                kind: "brand_new_event".into()
            }
        );
        assert!(parse_event(&SseEvent {
            event: "x".into(),
            data: "not json".into()
        })
        .is_err());
    }

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

    #[test]
    fn a_whole_stream_split_at_every_byte_gives_the_same_text_and_usage() {
        let stream = concat!(
            "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"m\",\"model\":\"x\",\"usage\":{\"input_tokens\":9,\"output_tokens\":1}}}\n\n",
            "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n",
            "event: ping\ndata: {\"type\": \"ping\"}\n\n",
            "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Grüß \"}}\n\n",
            "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"dich 👋\"}}\n\n",
            "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n",
            "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"output_tokens\":4}}\n\n",
            "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n",
        )
        .as_bytes();
        for split in 0..=stream.len() {
            let mut parser = SseParser::new();
            let mut raw = parser.push(&stream[..split]);
            raw.extend(parser.push(&stream[split..]));
            let (mut text, mut usage, mut stopped) = (String::new(), Usage::default(), false);
            for event in raw.iter().map(|e| parse_event(e).unwrap()) {
                match event {
                    StreamEvent::MessageStart { usage: u, .. }
                    | StreamEvent::MessageDelta { usage: u, .. } => usage.merge(&u),
                    StreamEvent::TextDelta { text: t, .. } => text.push_str(&t),
                    StreamEvent::MessageStop => stopped = true,
                    _ => {}
                }
            }
            assert_eq!(text, "Grüß dich 👋", "split at {split}");
            assert_eq!(
                (usage.input_tokens, usage.output_tokens),
                (9, 4),
                "split at {split}"
            );
            assert!(stopped);
        }
    }
}
