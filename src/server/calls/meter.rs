//! What was seen of a call's answer, read the same way for a chat turn and
//! a gateway call: usage as Anthropic reported it, how much text went to
//! the client, when the first token came, and how the stream ended.

use std::{borrow::Cow, time::Instant};

use serde::Deserialize;

use super::estimate::TextBytes;
use crate::server::anthropic::{UpstreamError, Usage};

/// Everything the ledger needs from an answer, however far it got.
#[derive(Debug, Default)]
pub struct Observed {
    pub usage: Usage,
    /// `message_start` (or a JSON reply) reported the input.
    pub input_reported: bool,
    /// The final usage arrived (`message_delta`, or a JSON reply's `usage`).
    pub final_usage: bool,
    /// Output bytes passed on to the client: text, thinking, tool input.
    pub relayed: TextBytes,
    pub ttft_ms: Option<i64>,
    pub request_id: Option<String>,
    /// `message_stop` arrived.
    pub stopped_cleanly: bool,
}

/// What one stream event means for the relay.
#[derive(Debug)]
pub enum Seen<'a> {
    Nothing,
    /// A text delta, for a relay that shows text (the chat page).
    Text(Cow<'a, str>),
    /// A delta of extended thinking, shown apart from the text.
    Thinking(Cow<'a, str>),
    /// `message_stop`: the answer is complete.
    Stop,
    /// An `error` event: the answer ends here.
    Failed(UpstreamError),
}

impl Observed {
    /// Reads one SSE event (its name and data).
    pub fn observe_event<'a>(
        &mut self,
        event: &str,
        data: &'a str,
        started_at: Instant,
    ) -> Seen<'a> {
        match event {
            "message_start" => {
                if let Ok(start) = serde_json::from_str::<Start>(data) {
                    if let Some(usage) = start.message.usage {
                        self.usage.merge(&usage);
                        self.input_reported = true;
                    }
                }
                Seen::Nothing
            }
            "message_delta" => {
                if let Ok(Delta { usage: Some(usage) }) = serde_json::from_str::<Delta>(data) {
                    self.usage.merge(&usage);
                    self.final_usage = true;
                }
                Seen::Nothing
            }
            "content_block_delta" => {
                self.ttft_ms
                    .get_or_insert_with(|| started_at.elapsed().as_millis() as i64);
                match serde_json::from_str::<BlockDelta>(data) {
                    Ok(BlockDelta { delta }) => {
                        for part in [&delta.text, &delta.thinking, &delta.partial_json] {
                            self.relayed.add(part.as_deref().unwrap_or(""));
                        }
                        match (delta.kind.as_deref(), delta.text, delta.thinking) {
                            (Some("text_delta"), Some(text), _) => Seen::Text(text),
                            (Some("thinking_delta"), _, Some(thinking)) => Seen::Thinking(thinking),
                            _ => Seen::Nothing,
                        }
                    }
                    // Unreadable, yet relayed: count all of it.
                    Err(_) => {
                        self.relayed.add(data);
                        Seen::Nothing
                    }
                }
            }
            "message_stop" => {
                self.stopped_cleanly = true;
                Seen::Stop
            }
            "error" => {
                let (kind, message) = error_of(data);
                Seen::Failed(UpstreamError::StreamError { kind, message })
            }
            _ => Seen::Nothing,
        }
    }

    /// Reads a whole JSON reply: its usage, or, if it has none, its size.
    pub fn observe_json_reply(&mut self, body: &[u8], started_at: Instant) {
        self.ttft_ms = Some(started_at.elapsed().as_millis() as i64);
        match serde_json::from_slice::<JsonReply>(body) {
            Ok(JsonReply { usage: Some(usage) }) => {
                self.usage.merge(&usage);
                self.input_reported = true;
                self.final_usage = true;
            }
            _ => self.relayed.add(&String::from_utf8_lossy(body)),
        }
    }
}

#[derive(Deserialize)]
struct Start {
    message: StartMessage,
}

#[derive(Deserialize)]
struct StartMessage {
    usage: Option<Usage>,
}

#[derive(Deserialize)]
struct Delta {
    usage: Option<Usage>,
}

#[derive(Deserialize)]
struct BlockDelta<'a> {
    #[serde(borrow)]
    delta: DeltaBody<'a>,
}

#[derive(Deserialize)]
struct DeltaBody<'a> {
    #[serde(rename = "type", borrow)]
    kind: Option<Cow<'a, str>>,
    #[serde(borrow)]
    text: Option<Cow<'a, str>>,
    #[serde(borrow)]
    thinking: Option<Cow<'a, str>>,
    #[serde(borrow)]
    partial_json: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct JsonReply {
    usage: Option<Usage>,
}

fn error_of(data: &str) -> (String, String) {
    let value: serde_json::Value = serde_json::from_str(data).unwrap_or_default();
    let field = |name: &str| {
        value["error"][name]
            .as_str()
            .unwrap_or("api_error")
            .to_owned()
    };
    (field("type"), field("message"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn observe(observed: &mut Observed, event: &str, data: &str) -> String {
        match observed.observe_event(event, data, Instant::now()) {
            Seen::Text(text) => text.into_owned(),
            Seen::Thinking(thinking) => format!("<thinking {thinking}>"),
            Seen::Stop => "<stop>".into(),
            Seen::Failed(err) => format!("<{}>", err.label()),
            Seen::Nothing => String::new(),
        }
    }

    #[test]
    fn usage_comes_from_message_start_and_message_delta() {
        let mut observed = Observed::default();
        observe(
            &mut observed,
            "message_start",
            r#"{"type":"message_start","message":{"id":"m","usage":{"input_tokens":12,"output_tokens":1}}}"#,
        );
        assert!(observed.input_reported && !observed.final_usage);
        assert_eq!(observed.usage.input_tokens, 12);
        observe(
            &mut observed,
            "message_delta",
            r#"{"type":"message_delta","delta":{},"usage":{"output_tokens":40}}"#,
        );
        assert!(observed.final_usage);
        assert_eq!(observed.usage.output_tokens, 40);
    }

    #[test]
    fn every_kind_of_delta_counts_as_relayed_output_and_text_and_thinking_are_told_apart() {
        let mut observed = Observed::default();
        let text = observe(
            &mut observed,
            "content_block_delta",
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hi \"there\""}}"#,
        );
        assert_eq!(text, "Hi \"there\"");
        assert!(observed.ttft_ms.is_some());
        let thinking = observe(
            &mut observed,
            "content_block_delta",
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":"hmm"}}"#,
        );
        assert_eq!(thinking, "<thinking hmm>");
        observe(
            &mut observed,
            "content_block_delta",
            r#"{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{\"a\":"}}"#,
        );
        assert_eq!(
            observed.relayed,
            TextBytes::of("Hi \"there\"hmm{\"a\":"),
            "the decoded text, not the JSON around it"
        );
    }

    #[test]
    fn a_stream_ends_cleanly_only_with_message_stop_and_an_error_event_ends_it() {
        let mut observed = Observed::default();
        assert_eq!(observe(&mut observed, "ping", "{}"), "");
        let failed = observe(
            &mut observed,
            "error",
            r#"{"type":"error","error":{"type":"overloaded_error","message":"busy"}}"#,
        );
        assert_eq!(failed, "<overloaded_error>");
        assert!(!observed.stopped_cleanly);
        assert_eq!(observe(&mut observed, "message_stop", "{}"), "<stop>");
        assert!(observed.stopped_cleanly);
    }

    #[test]
    fn a_json_reply_without_usage_counts_its_size() {
        let mut observed = Observed::default();
        observed.observe_json_reply(
            br#"{"usage":{"input_tokens":5,"output_tokens":7}}"#,
            Instant::now(),
        );
        assert!(observed.final_usage && observed.input_reported);
        assert_eq!(observed.usage.output_tokens, 7);
        let mut odd = Observed::default();
        odd.observe_json_reply(&[b'x'; 300], Instant::now());
        assert!(!odd.final_usage);
        assert_eq!(odd.relayed.tokens(), 150);
    }

    #[test]
    fn a_whole_stream_split_at_every_byte_is_read_the_same() {
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
            let mut parser = crate::server::anthropic::sse::SseParser::new();
            let mut observed = Observed::default();
            let mut text = String::new();
            for part in [&stream[..split], &stream[split..]] {
                parser.feed(part, |event, data| {
                    text.push_str(&observe(&mut observed, event, data));
                    std::ops::ControlFlow::Continue(())
                });
            }
            assert_eq!(text, "Grüß dich 👋<stop>", "split at {split}");
            let usage = observed.usage;
            assert_eq!(
                (usage.input_tokens, usage.output_tokens),
                (9, 4),
                "split at {split}"
            );
            assert!(observed.input_reported && observed.final_usage);
            assert_eq!(observed.relayed, TextBytes::of("Grüß dich 👋"));
        }
    }
}
