//! Anthropic's streaming events, typed, and the usage they report.

use serde::Deserialize;

use super::sse::SseEvent;

/// Token counts as Anthropic reports them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub struct Usage {
    #[serde(default)]
    pub input_tokens: u64,
    #[serde(default)]
    pub output_tokens: u64,
    #[serde(default)]
    pub cache_creation_input_tokens: u64,
    #[serde(default)]
    pub cache_read_input_tokens: u64,
}

impl Usage {
    /// Folds in a later report. `message_delta` counts are cumulative, so the
    /// larger value wins; fields a report leaves out keep what we had.
    pub fn merge(&mut self, later: &Usage) {
        self.input_tokens = self.input_tokens.max(later.input_tokens);
        self.output_tokens = self.output_tokens.max(later.output_tokens);
        self.cache_creation_input_tokens = self
            .cache_creation_input_tokens
            .max(later.cache_creation_input_tokens);
        self.cache_read_input_tokens = self
            .cache_read_input_tokens
            .max(later.cache_read_input_tokens);
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
