//! A streamed reply relayed to the chat page: text deltas go to the
//! browser as they arrive, every event goes through the call's meter (the
//! same one the gateway's relay uses).

use std::time::Duration;

use bytes::Bytes;
use futures::{Stream, StreamExt};
use tokio::sync::mpsc;

use crate::{
    model::chat::ChatEvent,
    server::{
        accounting::CallEnd,
        anthropic::{sse::SseParser, UpstreamError, UpstreamResponse, STREAM_IDLE_TIMEOUT},
        calls::{meter::Seen, Call},
    },
};

/// After `message_stop`, how long to wait for the rest of the upstream
/// body (its last bytes), so the connection goes back to the pool.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(2);

/// What follows `message_stop` in a reply's body.
pub(super) type RestOfBody = Box<dyn Stream<Item = Result<Bytes, hyper::Error>> + Send + Unpin>;

/// Relays text deltas to the browser until the reply ends or the stream
/// fails, metering every event. After `message_stop` it leaves the rest of
/// the body in `rest`, to be read to its end so the connection is reused.
/// Dropping `response` mid-way cancels the upstream call.
pub(super) async fn relay(
    response: UpstreamResponse,
    tx: &mpsc::Sender<ChatEvent>,
    call: &mut Call,
    text: &mut String,
    thinking: &mut String,
    rest: &mut Option<RestOfBody>,
) -> CallEnd {
    let mut chunks = response.bytes_stream();
    let mut parser = SseParser::new();
    let started_at = call.started_at();
    loop {
        let bytes = match tokio::time::timeout(STREAM_IDLE_TIMEOUT, chunks.next()).await {
            Err(_) => return CallEnd::Failed(UpstreamError::Timeout),
            Ok(None) => return CallEnd::Failed(UpstreamError::StreamCut),
            Ok(Some(Err(err))) => return CallEnd::Failed(UpstreamError::from_body_error(&err)),
            Ok(Some(Ok(bytes))) => bytes,
        };
        let mut deltas = Vec::new();
        let mut ended = None;
        parser.feed(&bytes, |event, data| {
            match call.observed.observe_event(event, data, started_at) {
                Seen::Text(delta) => deltas.push(ChatEvent::Delta {
                    text: delta.into_owned(),
                }),
                Seen::Thinking(delta) => deltas.push(ChatEvent::Thinking {
                    text: delta.into_owned(),
                }),
                Seen::Stop => ended = Some(CallEnd::Complete),
                Seen::Failed(err) => ended = Some(CallEnd::Failed(err)),
                Seen::Nothing => {}
            }
            if ended.is_some() {
                std::ops::ControlFlow::Break(())
            } else {
                std::ops::ControlFlow::Continue(())
            }
        });
        for delta in deltas {
            match &delta {
                ChatEvent::Thinking { text: piece } => thinking.push_str(piece),
                ChatEvent::Delta { text: piece } => text.push_str(piece),
                _ => {}
            }
            if tx.send(delta).await.is_err() {
                return CallEnd::Stopped;
            }
        }
        if let Some(end) = ended {
            if matches!(end, CallEnd::Complete) {
                *rest = Some(Box::new(chunks));
            }
            return end;
        }
    }
}

/// Reads what is left of a finished stream, so its connection is reused.
pub(super) async fn drain(mut rest: RestOfBody) {
    let read = async { while let Some(Ok(_)) = rest.next().await {} };
    let _ = tokio::time::timeout(DRAIN_TIMEOUT, read).await;
}
