//! `POST /v1/messages`: the same routing, limits and ledger as a chat turn,
//! with the client's body forwarded as sent (JSON or SSE).
//!
//! The upstream call runs in its own task, so it is accounted for even when
//! the client hangs up: the handler only waits for the response head.

use std::{convert::Infallible, time::Instant};

use axum::{
    body::Body,
    extract::State,
    http::HeaderMap,
    response::{IntoResponse, Response},
};
use bytes::{Bytes, BytesMut};
use futures::{FutureExt, StreamExt};
use tokio::sync::{mpsc, oneshot};

use super::{auth, error::GatewayError, passthrough, request};
use crate::server::{
    accounting::{CallEnd, CallInFlight, CallOrigin, CallReport},
    anthropic::{
        sse::SseParser, ForwardedHeaders, UpstreamError, Usage, JSON_TIMEOUT, STREAM_IDLE_TIMEOUT,
    },
    limits,
    state::AppState,
};

pub async fn create_message(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    match start(state, headers, body).await {
        Ok(response) => response,
        Err(err) => err.into_response(),
    }
}

async fn start(state: AppState, headers: HeaderMap, body: Body) -> Result<Response, GatewayError> {
    let principal = auth::authenticate(&state, &headers).await?;
    let routed = principal.route.clone()?;
    let body = request::read_body(body, state.config.max_body_bytes).await?;
    let parsed = request::parse(&body)?;
    if !routed.allows_model(&parsed.model) {
        return Err(GatewayError::permission(format!(
            "The model {} is not in your keyward plan. Models you may use: {}. Add your own Anthropic key in keyward's Settings to use any model.",
            parsed.model,
            routed.allowed_models().join(", ")
        )));
    }
    let (body, hold) = if limits::needs_hold(&routed) {
        let clamp = routed.plan.as_ref().map(|plan| plan.max_tokens);
        let (body, worst) = request::clamp_and_estimate(body, &parsed, clamp)?;
        let hold =
            limits::reserve_call(&state, principal.user.id, &routed, &parsed.model, worst).await?;
        (body, hold)
    } else {
        (body, None)
    };
    let call = CallInFlight {
        routed,
        hold,
        origin: CallOrigin {
            user_id: principal.user.id,
            token_id: Some(principal.token_id),
            ..CallOrigin::default()
        },
        model: parsed.model,
        started_at: Instant::now(),
        slot: state.ledger.slot().await,
    };
    let (head_tx, head_rx) = oneshot::channel();
    let upstream = Upstream {
        state: state.clone(),
        call,
        forwarded: ForwardedHeaders::from_client(&headers),
        head: head_tx,
    };
    if parsed.stream {
        state.tasks.spawn(upstream.stream(body));
    } else {
        state.tasks.spawn(upstream.json(body));
    }
    head_rx.await.map_err(|_| GatewayError::internal())
}

/// One upstream call on behalf of a gateway client.
struct Upstream {
    state: AppState,
    call: CallInFlight,
    forwarded: ForwardedHeaders,
    /// Where the response for the client goes, once known.
    head: oneshot::Sender<Response>,
}

impl Upstream {
    /// Sends the request; `None` when the client left before the answer.
    async fn send(
        &mut self,
        body: Bytes,
        stream: bool,
    ) -> Option<Result<reqwest::Response, UpstreamError>> {
        let call = self.state.anthropic.post_forwarded(
            "/v1/messages",
            &self.call.routed.secret,
            &self.forwarded,
            body,
            stream,
        );
        tokio::select! {
            answer = call => Some(answer),
            _ = self.head.closed() => None,
        }
    }

    /// The client left before its answer was ready.
    async fn stopped(self, report: CallReport) {
        self.call
            .finish(&self.state, &CallEnd::Stopped, report)
            .await;
    }

    async fn fail(self, err: UpstreamError) {
        let report = CallReport {
            request_id: err.request_id(),
            ..CallReport::default()
        };
        // Marked before the client hears of it, so its next call is refused up front.
        self.call.note_failure(&self.state, &err).await;
        let _ = self
            .head
            .send(passthrough::upstream_error(&err, self.call.routed.source));
        self.call
            .finish(&self.state, &CallEnd::Failed(err), report)
            .await;
    }

    async fn json(mut self, body: Bytes) {
        let response = match self.send(body, false).await {
            None => return self.stopped(CallReport::default()).await,
            Some(Err(err)) => return self.fail(err).await,
            Some(Ok(response)) => response,
        };
        let status = response.status();
        let headers = response.headers().clone();
        let read = tokio::select! {
            read = tokio::time::timeout(JSON_TIMEOUT, response.bytes()) => read,
            _ = self.head.closed() => return self.stopped(report_from(&headers, Usage::default())).await,
        };
        let bytes = match read {
            Ok(Ok(bytes)) => bytes,
            Ok(Err(_)) => return self.fail(UpstreamError::StreamCut).await,
            Err(_) => return self.fail(UpstreamError::Timeout).await,
        };
        #[derive(serde::Deserialize)]
        struct Reply {
            #[serde(default)]
            usage: Usage,
        }
        let usage = serde_json::from_slice::<Reply>(&bytes)
            .map(|r| r.usage)
            .unwrap_or_default();
        let mut report = report_from(&headers, usage);
        report.ttft_ms = Some(self.call.started_at.elapsed().as_millis() as i64);
        let client_response =
            passthrough::response(status, &headers, "application/json", Body::from(bytes));
        let end = if self.head.send(client_response).is_ok() {
            CallEnd::Complete
        } else {
            CallEnd::Stopped
        };
        self.call.finish(&self.state, &end, report).await;
    }

    async fn stream(mut self, body: Bytes) {
        let response = match self.send(body, true).await {
            None => return self.stopped(CallReport::default()).await,
            Some(Err(err)) => return self.fail(err).await,
            Some(Ok(response)) => response,
        };
        let mut report = report_from(response.headers(), Usage::default());
        let (chunks_tx, mut chunks_rx) = mpsc::channel::<Bytes>(32);
        let client_body = Body::from_stream(
            futures::stream::poll_fn(move |cx| chunks_rx.poll_recv(cx)).map(Ok::<_, Infallible>),
        );
        let mut head = passthrough::response(
            response.status(),
            response.headers(),
            "text/event-stream",
            client_body,
        );
        head.headers_mut()
            .insert("cache-control", "no-cache".parse().expect("static header"));
        if self.head.send(head).is_err() {
            self.call
                .finish(&self.state, &CallEnd::Stopped, report)
                .await;
            return;
        }
        let end = relay_events(response, &chunks_tx, &mut report, self.call.started_at).await;
        // The client's response ends here, not after the ledger commit below.
        drop(chunks_tx);
        if let CallEnd::Failed(err) = &end {
            self.call.note_failure(&self.state, err).await;
        }
        self.call.finish(&self.state, &end, report).await;
    }
}

fn report_from(headers: &HeaderMap, usage: Usage) -> CallReport {
    CallReport {
        usage,
        ttft_ms: None,
        request_id: headers
            .get("request-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
    }
}

/// Passes each chunk on as it arrives, reading the usage events on the way.
/// Chunks that have already arrived together go out in one write (never
/// waiting for more), which saves a relay step per event under load.
/// Dropping `response` on return cancels the upstream call.
async fn relay_events(
    response: reqwest::Response,
    to_client: &mpsc::Sender<Bytes>,
    report: &mut CallReport,
    started_at: Instant,
) -> CallEnd {
    let mut chunks = response.bytes_stream();
    let mut parser = SseParser::new();
    let mut unsent = BytesMut::new();
    let mut stopped_cleanly = false;
    let end = loop {
        let ready = if unsent.is_empty() {
            None
        } else {
            chunks.next().now_or_never()
        };
        let chunk = match ready {
            Some(chunk) => Ok(chunk),
            None => {
                if !unsent.is_empty() && to_client.send(unsent.split().freeze()).await.is_err() {
                    return CallEnd::Stopped;
                }
                tokio::select! {
                    _ = to_client.closed() => return CallEnd::Stopped,
                    chunk = tokio::time::timeout(STREAM_IDLE_TIMEOUT, chunks.next()) => chunk,
                }
            }
        };
        let bytes = match chunk {
            Err(_) => break CallEnd::Failed(UpstreamError::Timeout),
            Ok(None) if stopped_cleanly => break CallEnd::Complete,
            Ok(None) | Ok(Some(Err(_))) => break CallEnd::Failed(UpstreamError::StreamCut),
            Ok(Some(Ok(bytes))) => bytes,
        };
        unsent.extend_from_slice(&bytes);
        if let Some(failed) = read_events(
            &mut parser,
            &bytes,
            report,
            started_at,
            &mut stopped_cleanly,
        ) {
            break failed;
        }
    };
    if !unsent.is_empty() && to_client.send(unsent.freeze()).await.is_err() {
        return CallEnd::Stopped;
    }
    end
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

/// `POST /v1/messages/count_tokens`: passed through on the caller's key.
/// It costs nothing upstream, so it is neither reserved nor in the ledger.
pub async fn count_tokens(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let answer = async {
        let principal = auth::authenticate(&state, &headers).await?;
        let routed = principal.route.clone()?;
        let body = request::read_body(body, state.config.max_body_bytes).await?;
        let parsed = request::parse(&body)?;
        if !routed.allows_model(&parsed.model) {
            return Err(GatewayError::permission(format!(
                "The model {} is not in your keyward plan.",
                parsed.model
            )));
        }
        let forwarded = ForwardedHeaders::from_client(&headers);
        let answer = state
            .anthropic
            .post_forwarded(
                "/v1/messages/count_tokens",
                &routed.secret,
                &forwarded,
                body,
                false,
            )
            .await;
        Ok(match answer {
            Err(err) => passthrough::upstream_error(&err, routed.source),
            Ok(response) => {
                let status = response.status();
                let headers = response.headers().clone();
                match response.bytes().await {
                    Ok(bytes) => passthrough::response(
                        status,
                        &headers,
                        "application/json",
                        Body::from(bytes),
                    ),
                    Err(_) => passthrough::upstream_error(&UpstreamError::StreamCut, routed.source),
                }
            }
        })
    };
    match answer.await {
        Ok(response) => response,
        Err(err) => err.into_response(),
    }
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
}
