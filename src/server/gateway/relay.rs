//! A streamed reply relayed to the client: the client's response body reads
//! the upstream stream itself, passing each chunk on as it arrives and
//! reading the usage events on the way. There is no task or channel in
//! between; hyper polls the body and writes what is ready in one go.
//!
//! When the client hangs up, the server drops the body, which drops the
//! upstream stream (cancelling the call) and the open call (recording it as
//! stopped with the usage seen so far).

use std::{convert::Infallible, time::Instant};

use bytes::Bytes;
use futures::{Stream, StreamExt};

use super::open_call::OpenCall;
use crate::server::{
    accounting::{CallEnd, CallReport},
    anthropic::{sse::SseParser, UpstreamError, UpstreamResponse, Usage, STREAM_IDLE_TIMEOUT},
};

struct Relay<S> {
    chunks: S,
    parser: SseParser,
    open: OpenCall,
    stopped_cleanly: bool,
}

/// The body for the client: the upstream chunks, unchanged.
pub fn events(
    response: UpstreamResponse,
    open: OpenCall,
) -> impl Stream<Item = Result<Bytes, Infallible>> + Send + 'static {
    let relay = Relay {
        chunks: response.bytes_stream(),
        parser: SseParser::new(),
        open,
        stopped_cleanly: false,
    };
    futures::stream::unfold(Some(relay), |relay| async move {
        let mut relay = relay?;
        let end = match tokio::time::timeout(STREAM_IDLE_TIMEOUT, relay.chunks.next()).await {
            Ok(Some(Ok(bytes))) => {
                let started_at = relay.open.started_at();
                let failed = read_events(
                    &mut relay.parser,
                    &bytes,
                    &mut relay.open.report,
                    started_at,
                    &mut relay.stopped_cleanly,
                );
                let Some(failed) = failed else {
                    return Some((Ok(bytes), Some(relay)));
                };
                // The client still gets the error event itself.
                relay.open.end(failed).await;
                return Some((Ok(bytes), None));
            }
            Err(_) => CallEnd::Failed(UpstreamError::Timeout),
            Ok(None) if relay.stopped_cleanly => CallEnd::Complete,
            Ok(None) | Ok(Some(Err(_))) => CallEnd::Failed(UpstreamError::StreamCut),
        };
        relay.open.end(end).await;
        None
    })
}

/// Notes usage and the first token from the events in `bytes`; an `error`
/// event ends the call.
fn read_events(
    parser: &mut SseParser,
    bytes: &[u8],
    report: &mut CallReport,
    started_at: Instant,
    stopped_cleanly: &mut bool,
) -> Option<CallEnd> {
    for event in parser.push(bytes) {
        match event.event.as_str() {
            "message_start" | "message_delta" => {
                if let Some(usage) = usage_of(&event.data) {
                    report.usage.merge(&usage);
                }
            }
            "content_block_delta" => {
                report
                    .ttft_ms
                    .get_or_insert_with(|| started_at.elapsed().as_millis() as i64);
            }
            "message_stop" => *stopped_cleanly = true,
            "error" => {
                let (kind, message) = error_of(&event.data);
                return Some(CallEnd::Failed(UpstreamError::StreamError {
                    kind,
                    message,
                }));
            }
            _ => {}
        }
    }
    None
}

/// `usage` from a `message_start` (nested in `message`) or `message_delta`.
fn usage_of(data: &str) -> Option<Usage> {
    #[derive(serde::Deserialize)]
    struct Event {
        message: Option<Inner>,
        usage: Option<Usage>,
    }
    #[derive(serde::Deserialize)]
    struct Inner {
        usage: Option<Usage>,
    }
    let event: Event = serde_json::from_str(data).ok()?;
    event.usage.or(event.message.and_then(|m| m.usage))
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

    #[test]
    fn usage_is_read_from_both_event_shapes() {
        let start = r#"{"type":"message_start","message":{"id":"m","usage":{"input_tokens":12,"output_tokens":1}}}"#;
        assert_eq!(usage_of(start).unwrap().input_tokens, 12);
        let delta = r#"{"type":"message_delta","delta":{},"usage":{"output_tokens":40}}"#;
        assert_eq!(usage_of(delta).unwrap().output_tokens, 40);
        assert!(usage_of("not json").is_none());
    }

    #[test]
    fn stream_errors_keep_their_type() {
        let (kind, message) =
            error_of(r#"{"type":"error","error":{"type":"overloaded_error","message":"busy"}}"#);
        assert_eq!(
            (kind.as_str(), message.as_str()),
            ("overloaded_error", "busy")
        );
    }

    #[test]
    fn a_stream_is_clean_only_with_message_stop_and_an_error_event_ends_it() {
        let mut parser = SseParser::new();
        let mut report = CallReport::default();
        let mut stopped = false;
        let start = b"event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"usage\":{\"input_tokens\":9,\"output_tokens\":1}}}\n\n";
        let delta = b"event: content_block_delta\ndata: {\"type\":\"content_block_delta\"}\n\n";
        for chunk in [&start[..], &delta[..]] {
            let ended = read_events(
                &mut parser,
                chunk,
                &mut report,
                Instant::now(),
                &mut stopped,
            );
            assert!(ended.is_none());
        }
        assert_eq!(report.usage.input_tokens, 9);
        assert!(report.ttft_ms.is_some());
        assert!(!stopped);
        let error = b"event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"busy\"}}\n\n";
        let ended = read_events(
            &mut parser,
            error,
            &mut report,
            Instant::now(),
            &mut stopped,
        );
        assert!(matches!(
            ended,
            Some(CallEnd::Failed(UpstreamError::StreamError { ref kind, .. })) if kind == "overloaded_error"
        ));
        read_events(
            &mut parser,
            b"event: message_stop\ndata: {}\n\n",
            &mut report,
            Instant::now(),
            &mut stopped,
        );
        assert!(stopped);
    }
}
