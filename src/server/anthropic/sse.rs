//! A Server-Sent Events parser that accepts bytes in chunks split anywhere:
//! mid-line, mid-UTF-8 character, or between `\r` and `\n`.

use std::ops::ControlFlow;

/// One dispatched event: its `event:` name (default `message`) and its
/// `data:` lines joined by `\n`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    pub event: String,
    pub data: String,
}

#[derive(Debug, Default)]
pub struct SseParser {
    line: Vec<u8>,
    /// The event's name and data so far; both buffers are reused.
    event: String,
    data: String,
    has_data: bool,
    /// The last chunk ended on `\r`; a `\n` opening the next one belongs to it.
    skip_lf: bool,
}

impl SseParser {
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds bytes; returns the events completed by them, in order.
    pub fn push(&mut self, chunk: &[u8]) -> Vec<SseEvent> {
        let mut events = Vec::new();
        self.feed(chunk, |event, data| {
            events.push(SseEvent {
                event: event.to_owned(),
                data: data.to_owned(),
            });
            ControlFlow::Continue(())
        });
        events
    }

    /// Feeds bytes and hands each event they complete to `on_event` as
    /// (name, data), without allocating per event. When `on_event` breaks,
    /// the rest of the chunk is left unread.
    pub fn feed(
        &mut self,
        mut chunk: &[u8],
        mut on_event: impl FnMut(&str, &str) -> ControlFlow<()>,
    ) {
        while !chunk.is_empty() {
            if std::mem::take(&mut self.skip_lf) && chunk[0] == b'\n' {
                chunk = &chunk[1..];
                continue;
            }
            let Some(end) = memchr::memchr2(b'\n', b'\r', chunk) else {
                self.line.extend_from_slice(chunk);
                break;
            };
            self.skip_lf = chunk[end] == b'\r';
            let line = if self.line.is_empty() {
                &chunk[..end]
            } else {
                self.line.extend_from_slice(&chunk[..end]);
                &self.line[..]
            };
            let dispatched = if line.is_empty() {
                self.dispatch(&mut on_event)
            } else {
                take_field(line, &mut self.event, &mut self.data, &mut self.has_data);
                ControlFlow::Continue(())
            };
            self.line.clear();
            chunk = &chunk[end + 1..];
            if dispatched.is_break() {
                return;
            }
        }
    }

    fn dispatch(
        &mut self,
        on_event: &mut impl FnMut(&str, &str) -> ControlFlow<()>,
    ) -> ControlFlow<()> {
        let flow = if std::mem::take(&mut self.has_data) {
            let name = if self.event.is_empty() {
                "message"
            } else {
                &self.event
            };
            on_event(name, &self.data)
        } else {
            ControlFlow::Continue(())
        };
        self.event.clear();
        self.data.clear();
        flow
    }
}

/// Notes one non-empty line's `event:` or `data:` field.
fn take_field(line: &[u8], event: &mut String, data: &mut String, has_data: &mut bool) {
    let (field, value) = match memchr::memchr(b':', line) {
        Some(0) => return, // a comment
        Some(colon) => {
            let value = &line[colon + 1..];
            (&line[..colon], value.strip_prefix(b" ").unwrap_or(value))
        }
        None => (line, &b""[..]),
    };
    match field {
        b"event" => {
            event.clear();
            push_text(event, value);
        }
        b"data" => {
            if *has_data {
                data.push('\n');
            }
            push_text(data, value);
            *has_data = true;
        }
        _ => {} // id, retry and unknown fields do not matter here
    }
}

/// Appends `bytes` as text; invalid UTF-8 (never sent by Anthropic) becomes U+FFFD.
fn push_text(to: &mut String, bytes: &[u8]) {
    match std::str::from_utf8(bytes) {
        Ok(text) => to.push_str(text),
        Err(_) => to.push_str(&String::from_utf8_lossy(bytes)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STREAM: &str = "event: message_start\r\n\
        data: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"model\":\"m\",\"usage\":{\"input_tokens\":12,\"output_tokens\":1}}}\r\n\r\n\
        : a comment line\n\
        event: ping\ndata: {\"type\": \"ping\"}\n\n\
        event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"héllo ✓\"}}\n\n\
        event: error\rdata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\r\r\
        data: line one\ndata: line two\n\n";

    fn parse_whole(input: &[u8]) -> Vec<SseEvent> {
        SseParser::new().push(input)
    }

    #[test]
    fn parses_names_data_and_line_endings() {
        let events = parse_whole(STREAM.as_bytes());
        let names: Vec<&str> = events.iter().map(|e| e.event.as_str()).collect();
        assert_eq!(
            names,
            [
                "message_start",
                "ping",
                "content_block_delta",
                "error",
                "message"
            ]
        );
        assert!(events[2].data.contains("héllo ✓"));
        assert_eq!(events[4].data, "line one\nline two");
    }

    #[test]
    fn same_events_when_split_at_every_byte() {
        let whole = parse_whole(STREAM.as_bytes());
        let bytes = STREAM.as_bytes();
        for split in 0..=bytes.len() {
            let mut parser = SseParser::new();
            let mut events = parser.push(&bytes[..split]);
            events.extend(parser.push(&bytes[split..]));
            assert_eq!(events, whole, "split at byte {split}");
        }
    }

    #[test]
    fn same_events_when_fed_one_byte_at_a_time() {
        let mut parser = SseParser::new();
        let events: Vec<SseEvent> = STREAM
            .as_bytes()
            .iter()
            .flat_map(|b| parser.push(&[*b]))
            .collect();
        assert_eq!(events, parse_whole(STREAM.as_bytes()));
    }

    #[test]
    fn invalid_utf8_is_replaced_and_fields_without_colon_count() {
        let events = parse_whole(b"event: x\ndata: a\xffb\ndata\n\n");
        assert_eq!(events[0].event, "x");
        assert_eq!(events[0].data, "a\u{fffd}b\n");
    }

    proptest::proptest! {
        /// Any bytes, cut anywhere: no panic, and the events of the whole.
        #[test]
        fn any_bytes_split_anywhere_give_the_events_of_the_whole(
            input in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..600),
            cuts in proptest::collection::vec(0usize..600, 0..8),
        ) {
            let whole = parse_whole(&input);
            let mut cuts: Vec<usize> = cuts.into_iter().map(|cut| cut.min(input.len())).collect();
            cuts.sort_unstable();
            let mut parser = SseParser::new();
            let mut events = Vec::new();
            let mut from = 0;
            for cut in cuts.into_iter().chain([input.len()]) {
                events.extend(parser.push(&input[from..cut]));
                from = cut;
            }
            proptest::prop_assert_eq!(events, whole);
        }

        /// Lines made of SSE's own pieces (where splits matter most).
        #[test]
        fn sse_shaped_input_split_anywhere_gives_the_events_of_the_whole(
            pieces in proptest::collection::vec(
                proptest::sample::select(vec!["event: a", "data: x", "data: é✓", "data", ": c", "\n", "\r", "\r\n", "\n\n"]),
                0..60,
            ),
            cut in 0usize..400,
        ) {
            let input = pieces.concat().into_bytes();
            let cut = cut.min(input.len());
            let mut parser = SseParser::new();
            let mut events = parser.push(&input[..cut]);
            events.extend(parser.push(&input[cut..]));
            proptest::prop_assert_eq!(events, parse_whole(&input));
        }
    }

    #[test]
    fn an_unterminated_event_is_not_dispatched() {
        let events = parse_whole(b"event: message_stop\ndata: {}\n");
        assert!(events.is_empty());
    }
}
