//! `POST /v1/messages`: the same call lifecycle as a chat turn
//! (`server::calls`), with the client's body forwarded as sent (JSON or SSE).
//!
//! The handler makes the upstream call itself. The admitted `Call` accounts
//! for it however it ends, also when the client hangs up and the server
//! drops the handler (or, for a stream, the response body) midway.

use axum::{
    body::Body,
    extract::{Request, State},
    http::{HeaderMap, HeaderValue},
    response::{IntoResponse, Response},
};

use futures::StreamExt;

use super::{auth, error::GatewayError, passthrough, relay, request};
use crate::server::{
    accounting::{CallEnd, CallOrigin},
    anthropic::{ForwardedHeaders, UpstreamError, UpstreamResponse, JSON_TIMEOUT},
    calls::{self, Admission, Call, InputEstimate, Refusal},
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
    let body = request::read_body(body, state.config.max_body_bytes, body_timeout(&state)).await?;
    let parsed = request::parse(&body)?;
    calls::check_model(&routed, &parsed.model).map_err(refused)?;
    // Only a call that reserves is read whole (to clamp, estimate and check
    // its tools); a user's own key without caps forwards the body untouched.
    let (body, worst, input, adjusted) = if limits::needs_hold(&routed) {
        let clamp = routed.plan().map(|plan| plan.max_tokens);
        let prepared = request::prepare_for_hold(body, &parsed, clamp)?;
        calls::check_server_tools(&routed, prepared.server_tool).map_err(refused)?;
        let input = InputEstimate::Known(prepared.worst.input_tokens);
        let worst = Some(prepared.worst);
        (prepared.body, worst, input, prepared.adjusted)
    } else {
        let input = InputEstimate::FromBody(body.clone());
        (body, None, input, None)
    };
    let admission = Admission {
        routed,
        origin: CallOrigin {
            user_id: principal.user.id,
            token_id: Some(principal.token_id),
            client_session: client_id(&headers, "x-claude-code-session-id"),
            client_agent: client_id(&headers, "x-claude-code-agent-id"),
            ..CallOrigin::default()
        },
        model: parsed.model,
        worst,
        input,
        stream: parsed.stream,
        max_tokens: worst.map(|worst| worst.output_tokens).or(parsed.max_tokens),
        // Lowered with `max_tokens` if the clamp lowered it (`fit_thinking`).
        thinking_budget: parsed.thinking_budget,
    };
    let mut call = calls::admit(&state, admission).await.map_err(refused)?;
    let forwarded = ForwardedHeaders::from_client(&headers);
    // Disabling the account (or shutdown's grace running out) ends the
    // call also while it waits for Anthropic's answer.
    let cut = call.cut();
    let answer = tokio::select! {
        answer = call.send("/v1/messages", &forwarded, body, parsed.stream) => answer,
        () = cut.cancelled() => {
            call.end(CallEnd::Stopped).await;
            return Err(GatewayError::overloaded(
                "keyward ended this call: the account was disabled, or the server is restarting.",
            ));
        }
    };
    let mut response = match answer {
        Err(err) => fail(call, err).await,
        Ok(response) if parsed.stream => stream_reply(response, call),
        Ok(response) => json_reply(response, call).await,
    };
    if let Some(adjusted) = adjusted {
        if let Ok(value) = HeaderValue::from_str(&adjusted.header_value()) {
            response.headers_mut().insert("keyward-adjusted", value);
        }
    }
    Ok(response)
}

/// A client's id in `header`, when it sends a sane one: Claude Code names
/// its session (`x-claude-code-session-id`, a UUID) and each agent
/// (`x-claude-code-agent-id`). Anything else is ignored, so a client
/// cannot put arbitrary text in the usage views.
fn client_id(headers: &HeaderMap, header: &str) -> Option<String> {
    let value = headers.get(header)?.to_str().ok()?;
    let sane = !value.is_empty()
        && value.len() <= 64
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    sane.then(|| value.to_owned())
}

fn body_timeout(state: &AppState) -> std::time::Duration {
    std::time::Duration::from_secs(state.config.body_read_timeout_secs)
}

/// A refusal in Anthropic's shape: 403 for the plan's rules, 429 (or the
/// cap's own status) for a limit.
fn refused(refusal: Refusal) -> GatewayError {
    match refusal {
        Refusal::ModelNotInPlan { model, allowed } => model_not_in_plan(&model, &allowed),
        Refusal::ServerToolNotInPlan { tool, plan } => GatewayError::permission(format!(
            "Your keyward plan \"{plan}\" does not allow Anthropic's server tools (this request declares {tool}): they bill per use on this server's key. Remove the tool, use custom tools, or add your own Anthropic key in keyward's Settings."
        )),
        Refusal::Limit(err) => err.into(),
    }
}

/// 403 for a model outside the plan, naming the models it has and how to
/// point Claude Code at them (it picks its models from the environment).
fn model_not_in_plan(model: &str, allowed: &[String]) -> GatewayError {
    let first = allowed.first().map_or("", String::as_str);
    GatewayError::permission(format!(
        "The model {model} is not in your keyward plan. Models you may use: {}. \
         With Claude Code, set ANTHROPIC_MODEL and ANTHROPIC_SMALL_FAST_MODEL to one of them \
         (for example ANTHROPIC_MODEL={first}). Add your own Anthropic key in keyward's Settings \
         to use any model.",
        allowed.join(", ")
    ))
}

/// Ends a call that failed before its answer began, and gives the client's
/// response for it (sent only after a rejected key is marked, so the
/// client's next call is already refused up front).
async fn fail(call: Call, err: UpstreamError) -> Response {
    let response = passthrough::upstream_error(&err, call.routed().paid_by());
    call.end(CallEnd::Failed(err)).await;
    response
}

/// Reads the whole reply, notes its usage and passes it on.
async fn json_reply(mut response: UpstreamResponse, mut call: Call) -> Response {
    let mut reply = passthrough::response(
        response.status(),
        response.take_headers(),
        "application/json",
        Body::empty(),
    );
    call.observed.request_id = request_id(reply.headers());
    let bytes = match tokio::time::timeout(JSON_TIMEOUT, response.bytes()).await {
        Ok(Ok(bytes)) => bytes,
        Ok(Err(err)) => return fail(call, UpstreamError::from_body_error(&err)).await,
        Err(_) => return fail(call, UpstreamError::Timeout).await,
    };
    let started_at = call.started_at();
    call.observed.observe_json_reply(&bytes, started_at);
    call.end(CallEnd::Complete).await;
    *reply.body_mut() = Body::from(bytes);
    reply
}

/// Answers at once with the upstream head; the body relays the events.
fn stream_reply(mut response: UpstreamResponse, mut call: Call) -> Response {
    let mut reply = passthrough::response(
        response.status(),
        response.take_headers(),
        "text/event-stream",
        Body::empty(),
    );
    reply
        .headers_mut()
        .insert("cache-control", HeaderValue::from_static("no-cache"));
    call.observed.request_id = request_id(reply.headers());
    // Disabling the account (or shutdown's grace running out) ends the
    // stream; the call, dropped with it, is recorded as stopped.
    let cut = call.cut();
    let events = relay::events(response, call).take_until(cut.cancelled_owned());
    *reply.body_mut() = Body::from_stream(events);
    reply
}

fn request_id(headers: &HeaderMap) -> Option<String> {
    headers
        .get("request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// `POST /v1/messages/count_tokens`: passed through on the caller's key.
/// It costs nothing upstream, so it is neither reserved nor in the ledger;
/// on the platform key it is held to the plan's per-minute rate
/// (`CountWindow`).
pub async fn count_tokens(State(state): State<AppState>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let headers = parts.headers;
    let answer = async {
        let principal = auth::authenticate(&state, &headers).await?;
        let routed = principal.route.clone()?;
        let body =
            request::read_body(body, state.config.max_body_bytes, body_timeout(&state)).await?;
        let parsed = request::parse(&body)?;
        calls::check_model(&routed, &parsed.model).map_err(refused)?;
        let per_minute = routed.plan().and_then(|plan| plan.requests_per_minute);
        if let Some(limit) = per_minute {
            let now_ms = state.clock.now_ms();
            if let Err(wait_secs) = state
                .count_window
                .try_take(principal.user.id, limit, now_ms)
            {
                return Err(GatewayError::rate_limited(
                    format!("Your plan allows {limit} token counts per minute on the free tier. Try again in {wait_secs} s."),
                    wait_secs,
                ));
            }
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
            Err(err) => passthrough::upstream_error(&err, routed.paid_by()),
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
                    Err(_) => {
                        passthrough::upstream_error(&UpstreamError::StreamCut, routed.paid_by())
                    }
                }
            }
        })
    };
    match answer.await {
        Ok(response) => response,
        Err(err) => err.into_response(),
    }
}
