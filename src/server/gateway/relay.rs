//! A streamed reply relayed to the client: the client's response body reads
//! the upstream stream itself, passing each chunk on as it arrives and
//! reading the usage events on the way. There is no task or channel in
//! between; hyper polls the body and writes what is ready in one go.
//!
//! When the client hangs up, the server drops the body, which drops the
//! upstream stream (cancelling the call) and the open call (recording it as
//! stopped with the usage seen so far).

use std::{convert::Infallible, ops::ControlFlow, time::Instant};

use bytes::{Bytes, BytesMut};
use futures::{FutureExt, Stream, StreamExt};

use super::open_call::OpenCall;
use crate::server::{
    accounting::{CallEnd, CallReport},
    anthropic::{sse::SseParser, UpstreamError, UpstreamResponse, Usage, STREAM_IDLE_TIMEOUT},
};

struct Relay<S> {
    chunks: S,
    /// What the stream gave after the chunks sent last (its end or a read
    /// error), seen while looking for chunks that were ready.
    held: Option<Option<Result<Bytes, hyper::Error>>>,
    parser: SseParser,
    open: OpenCall,
    stopped_cleanly: bool,
}

/// Chunks that have already arrived go out together, up to this size: one
/// frame for the client instead of one per upstream read.
const MAX_COALESCED: usize = 64 * 1024;

impl<S> Relay<S>
where
    S: Stream<Item = Result<Bytes, hyper::Error>> + Unpin,
{
    /// `first` and the chunks that are ready right behind it (never waiting
    /// for more), with their events read; an `error` event ends the call.
    fn take_ready(&mut self, first: Bytes) -> (Bytes, Option<CallEnd>) {
        let mut failed = self.read(&first);
        let Some(second) = self.ready_chunk(&failed) else {
            return (first, failed);
        };
        let mut joined = BytesMut::from(&first[..]);
        let mut next = Some(second);
        while let Some(chunk) = next.take() {
            failed = self.read(&chunk);
            joined.extend_from_slice(&chunk);
            if joined.len() < MAX_COALESCED {
                next = self.ready_chunk(&failed);
            }
        }
        (joined.freeze(), failed)
    }

    /// The next chunk if it has arrived already and the call goes on. The
    /// stream's end or failure, if that is what arrived, is kept for the
    /// next poll.
    fn ready_chunk(&mut self, failed: &Option<CallEnd>) -> Option<Bytes> {
        if failed.is_some() {
            return None;
        }
        match self.chunks.next().now_or_never()? {
            Some(Ok(chunk)) => Some(chunk),
            end => {
                self.held = Some(end);
                None
            }
        }
    }

    fn read(&mut self, bytes: &[u8]) -> Option<CallEnd> {
        let started_at = self.open.started_at();
        read_events(
            &mut self.parser,
            bytes,
            &mut self.open.report,
            started_at,
            &mut self.stopped_cleanly,
        )
    }
}

/// The body for the client: the upstream chunks, unchanged.
pub fn events(
    response: UpstreamResponse,
    open: OpenCall,
) -> impl Stream<Item = Result<Bytes, Infallible>> + Send + 'static {
    let relay = Relay {
        chunks: response.bytes_stream(),
        held: None,
        parser: SseParser::new(),
        open,
        stopped_cleanly: false,
    };
    futures::stream::unfold(Some(relay), |relay| async move {
        let mut relay = relay?;
        let next = match relay.held.take() {
            Some(held) => Ok(held),
            None => tokio::time::timeout(STREAM_IDLE_TIMEOUT, relay.chunks.next()).await,
        };
        let end = match next {
            Ok(Some(Ok(bytes))) => {
                let (bytes, failed) = relay.take_ready(bytes);
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
    let mut failed = None;
    parser.feed(bytes, |event, data| {
        match event {
            "message_start" | "message_delta" => {
                if let Some(usage) = usage_of(data) {
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
                let (kind, message) = error_of(data);
                failed = Some(CallEnd::Failed(UpstreamError::StreamError {
                    kind,
                    message,
                }));
                return ControlFlow::Break(());
            }
            _ => {}
        }
        ControlFlow::Continue(())
    });
    failed
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
