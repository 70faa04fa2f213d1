//! A streamed reply relayed to the client: the client's response body reads
//! the upstream stream itself, passing each chunk on as it arrives and
//! metering the events on the way (`calls::meter`, as the chat relay does).
//! There is no task or channel in between; hyper polls the body and writes
//! what is ready in one go.
//!
//! When the client hangs up, the server drops the body, which drops the
//! upstream stream (cancelling the call) and the `Call` (recording it as
//! stopped with what was seen and relayed so far).

use std::convert::Infallible;

use bytes::{Bytes, BytesMut};
use futures::{FutureExt, Stream, StreamExt};

use crate::server::{
    accounting::CallEnd,
    anthropic::{sse::SseParser, UpstreamError, UpstreamResponse, STREAM_IDLE_TIMEOUT},
    calls::{meter::Seen, Call},
};

struct Relay<S> {
    chunks: S,
    /// What the stream gave after the chunks sent last (its end or a read
    /// error), seen while looking for chunks that were ready.
    held: Option<Option<Result<Bytes, hyper::Error>>>,
    parser: SseParser,
    call: Call,
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

    /// Meters the events in `bytes`; an `error` event ends the call.
    fn read(&mut self, bytes: &[u8]) -> Option<CallEnd> {
        let started_at = self.call.started_at();
        let observed = &mut self.call.observed;
        let mut failed = None;
        self.parser.feed(bytes, |event, data| {
            match observed.observe_event(event, data, started_at) {
                Seen::Failed(err) => {
                    failed = Some(CallEnd::Failed(err));
                    std::ops::ControlFlow::Break(())
                }
                _ => std::ops::ControlFlow::Continue(()),
            }
        });
        failed
    }
}

/// The body for the client: the upstream chunks, unchanged.
pub fn events(
    response: UpstreamResponse,
    call: Call,
) -> impl Stream<Item = Result<Bytes, Infallible>> + Send + 'static {
    let relay = Relay {
        chunks: response.bytes_stream(),
        held: None,
        parser: SseParser::new(),
        call,
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
                relay.call.end(failed).await;
                return Some((Ok(bytes), None));
            }
            Err(_) => CallEnd::Failed(UpstreamError::Timeout),
            Ok(None) if relay.call.observed.stopped_cleanly => CallEnd::Complete,
            Ok(None) => CallEnd::Failed(UpstreamError::StreamCut),
            Ok(Some(Err(err))) => CallEnd::Failed(UpstreamError::from_body_error(&err)),
        };
        relay.call.end(end).await;
        None
    })
}
