//! `POST /v1/messages`: the same routing, limits and ledger as a chat turn,
//! with the client's body forwarded as sent (JSON or SSE).
//!
//! The handler makes the upstream call itself. An `OpenCall` accounts for
//! it however it ends, also when the client hangs up and the server drops
//! the handler (or, for a stream, the response body) midway.

use axum::{
    body::Body,
    extract::{Request, State},
    http::{HeaderMap, HeaderValue},
    response::{IntoResponse, Response},
};

use super::{auth, error::GatewayError, open_call::OpenCall, passthrough, relay, request};
use crate::server::{
    accounting::{CallEnd, CallInFlight, CallOrigin},
    anthropic::{ForwardedHeaders, UpstreamError, UpstreamResponse, Usage, JSON_TIMEOUT},
    limits,
    state::AppState,
};

/// `POST /v1/messages`. It takes the whole request and keeps its parts
/// (as `count_tokens` does): a `HeaderMap` extractor would copy every header.
pub async fn create_message(State(state): State<AppState>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    // Boxed: the call's future is large (it holds the upstream exchange),
    // and every layer between hyper and this handler would otherwise move
    // it by value before its first poll.
    match Box::pin(start(state, parts.headers, body)).await {
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
        started_at: std::time::Instant::now(),
        slot: state.ledger.slot().await,
    };
    let open = OpenCall::new(state.clone(), call);
    let answer = state
        .anthropic
        .post_forwarded(
            "/v1/messages",
            open.secret(),
            &ForwardedHeaders::from_client(&headers),
            body,
            parsed.stream,
        )
        .await;
    Ok(match answer {
        Err(err) => open.fail(err).await,
        Ok(response) if parsed.stream => stream_reply(response, open),
        Ok(response) => json_reply(response, open).await,
    })
}

/// Reads the whole reply, notes its usage and passes it on.
async fn json_reply(mut response: UpstreamResponse, mut open: OpenCall) -> Response {
    let mut reply = passthrough::response(
        response.status(),
        response.take_headers(),
        "application/json",
        Body::empty(),
    );
    open.report.request_id = request_id(reply.headers());
    let bytes = match tokio::time::timeout(JSON_TIMEOUT, response.bytes()).await {
        Ok(Ok(bytes)) => bytes,
        Ok(Err(_)) => return open.fail(UpstreamError::StreamCut).await,
        Err(_) => return open.fail(UpstreamError::Timeout).await,
    };
    #[derive(serde::Deserialize)]
    struct Reply {
        #[serde(default)]
        usage: Usage,
    }
    open.report.usage = serde_json::from_slice::<Reply>(&bytes)
        .map(|r| r.usage)
        .unwrap_or_default();
    open.report.ttft_ms = Some(open.started_at().elapsed().as_millis() as i64);
    open.end(CallEnd::Complete).await;
    *reply.body_mut() = Body::from(bytes);
    reply
}

/// Answers at once with the upstream head; the body relays the events.
fn stream_reply(mut response: UpstreamResponse, mut open: OpenCall) -> Response {
    let mut reply = passthrough::response(
        response.status(),
        response.take_headers(),
        "text/event-stream",
        Body::empty(),
    );
    reply
        .headers_mut()
        .insert("cache-control", HeaderValue::from_static("no-cache"));
    open.report.request_id = request_id(reply.headers());
    *reply.body_mut() = Body::from_stream(relay::events(response, open));
    reply
}

fn request_id(headers: &HeaderMap) -> Option<String> {
    headers
        .get("request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// `POST /v1/messages/count_tokens`: passed through on the caller's key.
/// It costs nothing upstream, so it is neither reserved nor in the ledger.
pub async fn count_tokens(State(state): State<AppState>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let headers = parts.headers;
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
            Ok(mut response) => {
                let status = response.status();
                let headers = response.take_headers();
                match response.bytes().await {
                    Ok(bytes) => passthrough::response(
                        status,
                        headers,
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
