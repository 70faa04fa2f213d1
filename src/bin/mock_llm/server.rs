//! The mock's HTTP side.

use std::{
    collections::HashSet,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex,
    },
    time::Duration,
};

use axum::{
    body::{Body, Bytes},
    extract::{ConnectInfo, State},
    http::{HeaderMap, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
    routing::{get, post},
    Json, Router,
};
use futures::StreamExt;
use serde::Serialize;
use serde_json::{json, Value};

use super::{faults::Fault, models, replies};

#[derive(Clone)]
pub struct MockState {
    keys: Arc<HashSet<String>>,
    delay: Duration,
    received: Arc<Mutex<Vec<Received>>>,
    next_id: Arc<AtomicU64>,
    cache: crate::cache::PromptCache,
}

const MAX_RECORDED: usize = 10_000;

/// One request as the mock saw it; tests read these back.
#[derive(Debug, Clone, Serialize)]
pub struct Received {
    pub path: String,
    pub api_key: String,
    pub anthropic_version: String,
    pub model: Option<String>,
    pub max_tokens: Option<u64>,
    pub anthropic_beta: Option<String>,
    /// The whole request body, so tests can see that fields pass unchanged.
    pub body: Option<Value>,
    pub stream: bool,
    /// The client's address: one port per connection, so tests can count
    /// how many connections their calls used.
    pub peer: String,
}

impl MockState {
    pub fn new(keys: Vec<String>, delay: Duration) -> Self {
        Self {
            keys: Arc::new(
                keys.into_iter()
                    .map(|k| k.trim().to_owned())
                    .filter(|k| !k.is_empty())
                    .collect(),
            ),
            delay,
            received: Arc::default(),
            next_id: Arc::default(),
            cache: crate::cache::PromptCache::default(),
        }
    }

    fn record(&self, received: Received) {
        let mut log = self.received.lock().unwrap_or_else(|p| p.into_inner());
        // Long demos and benchmarks keep only the recent past.
        if log.len() >= MAX_RECORDED {
            log.drain(..MAX_RECORDED / 2);
        }
        log.push(received);
    }

    fn request_id(&self) -> String {
        format!(
            "req_mock_{:06}",
            self.next_id.fetch_add(1, Ordering::Relaxed)
        )
    }
}

pub fn router(state: MockState) -> Router {
    Router::new()
        .route("/v1/models", get(list_models))
        .route("/v1/messages", post(messages))
        .route("/v1/messages/count_tokens", post(count_tokens))
        .route("/_mock/requests", get(received).delete(forget))
        .with_state(state)
}

fn error(status: u16, kind: &str, message: &str) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body = json!({ "type": "error", "error": { "type": kind, "message": message } });
    (status, Json(body)).into_response()
}

fn api_key(headers: &HeaderMap) -> Option<String> {
    let header = |name| {
        headers
            .get(name)
            .and_then(|v: &HeaderValue| v.to_str().ok())
    };
    header("x-api-key").map(str::to_owned).or_else(|| {
        header("authorization")
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::to_owned)
    })
}

/// Checks the key like Anthropic does: 401 for unknown, 403 for a key marked
/// forbidden. Returns the error response, or `None` when the key is good.
fn reject_key(state: &MockState, key: Option<&str>) -> Option<Response> {
    let (status, kind, message) = match key {
        None => (401, "authentication_error", "x-api-key header is required"),
        Some(key) if !state.keys.contains(key) => {
            (401, "authentication_error", "invalid x-api-key")
        }
        Some(key) if key.contains("forbidden") => (
            403,
            "permission_error",
            "Your API key does not have permission to use the specified resource.",
        ),
        Some(_) => return None,
    };
    Some(error(status, kind, message))
}

fn received_from(path: &str, headers: &HeaderMap, body: Option<&Value>) -> Received {
    Received {
        peer: String::new(),
        path: path.to_owned(),
        api_key: api_key(headers).unwrap_or_default(),
        anthropic_version: headers
            .get("anthropic-version")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned(),
        model: body.and_then(|b| b["model"].as_str()).map(str::to_owned),
        max_tokens: body.and_then(|b| b["max_tokens"].as_u64()),
        stream: body.and_then(|b| b["stream"].as_bool()).unwrap_or(false),
        anthropic_beta: headers
            .get("anthropic-beta")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
        body: body.cloned(),
    }
}

fn header_fault(headers: &HeaderMap) -> Option<Fault> {
    headers
        .get("x-mock-fault")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| Fault::find(&format!("mock:{v}")))
}

fn with_upstream_headers(mut response: Response, request_id: &str) -> Response {
    let headers = response.headers_mut();
    let mut set = |name: &'static str, value: &str| {
        if let Ok(value) = HeaderValue::from_str(value) {
            headers.insert(name, value);
        }
    };
    set("request-id", request_id);
    set("anthropic-ratelimit-requests-limit", "1000");
    set("anthropic-ratelimit-requests-remaining", "999");
    set("anthropic-ratelimit-tokens-limit", "400000");
    set("anthropic-ratelimit-tokens-remaining", "399000");
    response
}

async fn list_models(State(state): State<MockState>, headers: HeaderMap) -> Response {
    state.record(received_from("/v1/models", &headers, None));
    if let Some(response) = reject_key(&state, api_key(&headers).as_deref()) {
        return response;
    }
    if let Some((status, kind, message)) = header_fault(&headers).and_then(Fault::immediate_error) {
        return error(status, kind, message);
    }
    with_upstream_headers(
        Json(models::list_json()).into_response(),
        &state.request_id(),
    )
}

async fn received(State(state): State<MockState>) -> Json<Vec<Received>> {
    Json(
        state
            .received
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone(),
    )
}

async fn forget(State(state): State<MockState>) -> StatusCode {
    state
        .received
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clear();
    StatusCode::NO_CONTENT
}

/// All text in the request (system + messages), for the token estimate.
fn all_text(body: &Value) -> String {
    let mut text = String::new();
    collect_text(&body["system"], &mut text);
    if let Some(messages) = body["messages"].as_array() {
        for message in messages {
            collect_text(&message["content"], &mut text);
        }
    }
    text
}

pub(crate) fn collect_text(value: &Value, out: &mut String) {
    match value {
        Value::String(s) => out.push_str(s),
        Value::Array(items) => items.iter().for_each(|item| collect_text(item, out)),
        Value::Object(map) => {
            for key in ["text", "content"] {
                if let Some(inner) = map.get(key) {
                    collect_text(inner, out);
                }
            }
        }
        _ => {}
    }
}

fn last_user_message(body: &Value) -> Option<&Value> {
    body["messages"]
        .as_array()?
        .iter()
        .rev()
        .find(|m| m["role"] == "user")
}

async fn count_tokens(State(state): State<MockState>, headers: HeaderMap, body: Bytes) -> Response {
    let Ok(body) = serde_json::from_slice::<Value>(&body) else {
        return error(
            400,
            "invalid_request_error",
            "request body is not valid JSON",
        );
    };
    state.record(received_from(
        "/v1/messages/count_tokens",
        &headers,
        Some(&body),
    ));
    if let Some(response) = reject_key(&state, api_key(&headers).as_deref()) {
        return response;
    }
    Json(json!({ "input_tokens": replies::estimate_tokens(&all_text(&body)) })).into_response()
}

/// What the assistant answers: text, or a tool call when tools are offered
/// and the last user turn is not already a tool result.
enum Answer {
    Text(&'static str),
    ToolUse { name: String },
    ToolResultEcho(String),
    Echo(String),
}

fn answer_for(body: &Value) -> Answer {
    let last = last_user_message(body);
    let tool_result = last
        .and_then(|m| m["content"].as_array())
        .and_then(|blocks| blocks.iter().find(|b| b["type"] == "tool_result"));
    if let Some(result) = tool_result {
        let mut text = String::new();
        collect_text(&result["content"], &mut text);
        return Answer::ToolResultEcho(format!("The tool answered: {text}"));
    }
    if let Some(tool) = body["tools"].as_array().and_then(|tools| tools.first()) {
        return Answer::ToolUse {
            name: tool["name"].as_str().unwrap_or("tool").to_owned(),
        };
    }
    let mut prompt = String::new();
    if let Some(last) = last {
        collect_text(&last["content"], &mut prompt);
    }
    // Lets tests send any markdown through the whole path.
    if let Some(echo) = prompt.strip_prefix("mock:echo ") {
        return Answer::Echo(echo.to_owned());
    }
    Answer::Text(replies::reply_for(&prompt))
}

/// Anthropic's checks on manual extended thinking: a budget of at least
/// 1,024 tokens, below `max_tokens`.
fn invalid_thinking(thinking: &Value, max_tokens: u64) -> Option<&'static str> {
    if thinking["type"] != "enabled" {
        return None;
    }
    let Some(budget) = thinking["budget_tokens"].as_u64() else {
        return Some("thinking.enabled.budget_tokens: Field required");
    };
    if budget < 1024 {
        return Some(
            "thinking.enabled.budget_tokens: Input should be greater than or equal to 1024",
        );
    }
    if budget >= max_tokens {
        return Some("`max_tokens` must be greater than `thinking.budget_tokens`. Please consult our documentation at https://docs.claude.com/en/docs/build-with-claude/extended-thinking#max-tokens-and-context-window-size");
    }
    None
}

async fn messages(
    State(state): State<MockState>,
    ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Ok(body) = serde_json::from_slice::<Value>(&body) else {
        return error(
            400,
            "invalid_request_error",
            "request body is not valid JSON",
        );
    };
    state.record(Received {
        peer: peer.to_string(),
        ..received_from("/v1/messages", &headers, Some(&body))
    });
    if let Some(response) = reject_key(&state, api_key(&headers).as_deref()) {
        return response;
    }
    let (Some(model), Some(max_tokens)) = (body["model"].as_str(), body["max_tokens"].as_u64())
    else {
        return error(
            400,
            "invalid_request_error",
            "model and max_tokens are required",
        );
    };
    if !body["messages"].is_array() {
        return error(400, "invalid_request_error", "messages: field required");
    }
    if let Some(ttl) = crate::cache::unknown_ttl(&body) {
        return error(
            400,
            "invalid_request_error",
            &format!("cache_control.ttl: Input should be '5m' or '1h', not {ttl}"),
        );
    }
    if crate::cache::breakpoints(&body) > crate::cache::MAX_BREAKPOINTS {
        return error(
            400,
            "invalid_request_error",
            "A maximum of 4 blocks with cache_control may be provided.",
        );
    }
    if let Some(message) = invalid_thinking(&body["thinking"], max_tokens) {
        return error(400, "invalid_request_error", message);
    }
    let clears_thinking = body["context_management"]["edits"]
        .as_array()
        .is_some_and(|edits| {
            edits.iter().any(|edit| {
                edit["type"]
                    .as_str()
                    .is_some_and(|kind| kind.starts_with("clear_thinking"))
            })
        });
    if clears_thinking && body["thinking"]["type"] != "enabled" {
        return error(
            400,
            "invalid_request_error",
            "`clear_thinking_20251015` strategy requires `thinking` to be enabled",
        );
    }
    let mut prompt = String::new();
    if let Some(last) = last_user_message(&body) {
        collect_text(&last["content"], &mut prompt);
    }
    let fault = header_fault(&headers).or_else(|| Fault::find(&prompt));
    let request_id = state.request_id();
    if let Some((status, kind, message)) = fault.and_then(Fault::immediate_error) {
        let mut response = with_upstream_headers(error(status, kind, message), &request_id);
        if status == 429 {
            response
                .headers_mut()
                .insert("retry-after", HeaderValue::from_static("7"));
        }
        return response;
    }
    if fault == Some(Fault::Hang) {
        tokio::time::sleep(Duration::from_secs(30)).await;
    }
    let total = replies::estimate_tokens(&all_text(&body));
    let key = api_key(&headers).unwrap_or_default();
    let mut reply = Reply::new(model, max_tokens, total, answer_for(&body));
    reply.cached = state.cache.split(&key, &body, total);
    reply.web_searches = declares_web_search(&body).into();
    if body["thinking"]["type"] == "enabled" {
        reply.thinking = replies::pieces(replies::THINKING)
            .into_iter()
            .map(str::to_owned)
            .collect();
    }
    let response = if body["stream"].as_bool().unwrap_or(false) {
        let delay = if fault == Some(Fault::Slow) {
            Duration::from_millis(200)
        } else {
            state.delay
        };
        stream_reply(reply, delay, fault == Some(Fault::Cut))
    } else {
        Json(reply.message_json()).into_response()
    };
    with_upstream_headers(response, &request_id)
}

struct Reply {
    id: String,
    model: String,
    /// The prompt's tokens: read from or written to the prompt cache, or
    /// plain input.
    cached: crate::cache::Split,
    content: ReplyContent,
    stop_reason: &'static str,
    /// Searches reported in `usage.server_tool_use`.
    web_searches: u64,
    /// Extended thinking (when the request turns it on), before the answer;
    /// one piece counts as one output token.
    thinking: Vec<String>,
}

/// Whether the request offers Anthropic's web search tool.
fn declares_web_search(body: &Value) -> bool {
    body["tools"].as_array().is_some_and(|tools| {
        tools.iter().any(|tool| {
            tool["type"]
                .as_str()
                .is_some_and(|kind| kind.starts_with("web_search_"))
        })
    })
}

enum ReplyContent {
    /// Text pieces; one piece counts as one output token.
    Text(Vec<String>),
    ToolUse {
        name: String,
    },
}

impl Reply {
    fn new(model: &str, max_tokens: u64, input_tokens: u64, answer: Answer) -> Self {
        let id = format!("msg_mock_{:016x}", rand_u64());
        let (content, stop_reason) = match answer {
            Answer::ToolUse { name } => (ReplyContent::ToolUse { name }, "tool_use"),
            Answer::Text(text) => Self::text(text, max_tokens),
            Answer::ToolResultEcho(text) | Answer::Echo(text) => Self::text(&text, max_tokens),
        };
        Self {
            id,
            model: model.to_owned(),
            cached: crate::cache::Split {
                input: input_tokens,
                ..Default::default()
            },
            content,
            stop_reason,
            web_searches: 0,
            thinking: Vec::new(),
        }
    }

    fn text(text: &str, max_tokens: u64) -> (ReplyContent, &'static str) {
        let pieces = replies::pieces(text);
        let limit = usize::try_from(max_tokens).unwrap_or(usize::MAX);
        let stop = if pieces.len() > limit {
            "max_tokens"
        } else {
            "end_turn"
        };
        (
            ReplyContent::Text(pieces.into_iter().take(limit).map(str::to_owned).collect()),
            stop,
        )
    }

    fn output_tokens(&self) -> u64 {
        let answer = match &self.content {
            ReplyContent::Text(pieces) => pieces.len() as u64,
            ReplyContent::ToolUse { .. } => 12,
        };
        answer + self.thinking.len() as u64
    }

    fn usage(&self, output_tokens: u64) -> Value {
        json!({
            "input_tokens": self.cached.input,
            "output_tokens": output_tokens,
            "cache_creation_input_tokens": self.cached.cache_creation,
            "cache_creation": {
                "ephemeral_5m_input_tokens": self.cached.cache_creation - self.cached.cache_creation_1h,
                "ephemeral_1h_input_tokens": self.cached.cache_creation_1h,
            },
            "cache_read_input_tokens": self.cached.cache_read,
            "server_tool_use": { "web_search_requests": self.web_searches },
        })
    }

    fn content_json(&self) -> Value {
        let answer = match &self.content {
            ReplyContent::Text(pieces) => json!({ "type": "text", "text": pieces.concat() }),
            ReplyContent::ToolUse { name } => {
                json!({ "type": "tool_use", "id": "toolu_mock_01", "name": name, "input": { "query": "keyward" } })
            }
        };
        if self.thinking.is_empty() {
            return json!([answer]);
        }
        json!([{ "type": "thinking", "thinking": self.thinking.concat(), "signature": THINKING_SIGNATURE }, answer])
    }

    fn message_json(&self) -> Value {
        json!({
            "id": self.id,
            "type": "message",
            "role": "assistant",
            "model": self.model,
            "content": self.content_json(),
            "stop_reason": self.stop_reason,
            "stop_sequence": null,
            "usage": self.usage(self.output_tokens()),
        })
    }
}

fn sse(event: &str, data: &Value) -> Bytes {
    Bytes::from(format!("event: {event}\ndata: {data}\n\n"))
}

/// What the mock puts where Anthropic puts a thinking block's signature.
const THINKING_SIGNATURE: &str = "mock-thinking-signature";

/// The SSE events of a reply, in Anthropic's order.
fn events(reply: &Reply) -> Vec<Bytes> {
    let mut start = reply.message_json();
    start["content"] = json!([]);
    start["stop_reason"] = Value::Null;
    start["usage"] = reply.usage(1);
    let mut out = vec![
        sse(
            "message_start",
            &json!({ "type": "message_start", "message": start }),
        ),
        sse("ping", &json!({ "type": "ping" })),
    ];
    let index = usize::from(!reply.thinking.is_empty());
    if index == 1 {
        out.push(sse("content_block_start", &json!({ "type": "content_block_start", "index": 0, "content_block": { "type": "thinking", "thinking": "" } })));
        for piece in &reply.thinking {
            out.push(sse("content_block_delta", &json!({ "type": "content_block_delta", "index": 0, "delta": { "type": "thinking_delta", "thinking": piece } })));
        }
        out.push(sse("content_block_delta", &json!({ "type": "content_block_delta", "index": 0, "delta": { "type": "signature_delta", "signature": THINKING_SIGNATURE } })));
        out.push(sse(
            "content_block_stop",
            &json!({ "type": "content_block_stop", "index": 0 }),
        ));
    }
    match &reply.content {
        ReplyContent::Text(pieces) => {
            out.push(sse("content_block_start", &json!({ "type": "content_block_start", "index": index, "content_block": { "type": "text", "text": "" } })));
            for piece in pieces {
                out.push(sse("content_block_delta", &json!({ "type": "content_block_delta", "index": index, "delta": { "type": "text_delta", "text": piece } })));
            }
        }
        ReplyContent::ToolUse { name } => {
            out.push(sse("content_block_start", &json!({ "type": "content_block_start", "index": index, "content_block": { "type": "tool_use", "id": "toolu_mock_01", "name": name, "input": {} } })));
            out.push(sse("content_block_delta", &json!({ "type": "content_block_delta", "index": index, "delta": { "type": "input_json_delta", "partial_json": "{\"query\": \"keyward\"}" } })));
        }
    }
    out.push(sse(
        "content_block_stop",
        &json!({ "type": "content_block_stop", "index": index }),
    ));
    out.push(sse(
        "message_delta",
        &json!({ "type": "message_delta", "delta": { "stop_reason": reply.stop_reason, "stop_sequence": null }, "usage": { "output_tokens": reply.output_tokens() } }),
    ));
    out.push(sse("message_stop", &json!({ "type": "message_stop" })));
    out
}

/// Streams the events with `delay` before each text delta. A cut stream ends
/// with an I/O error halfway, which drops the connection mid-body.
fn stream_reply(reply: Reply, delay: Duration, cut: bool) -> Response {
    let events = events(&reply);
    let cut_at = cut.then_some(events.len() / 2);
    let stream =
        futures::stream::iter(events.into_iter().enumerate()).then(move |(i, event)| async move {
            if Some(i) == cut_at {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::ConnectionReset,
                    "mock: stream cut",
                ));
            }
            if i > 2 && !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            Ok::<_, std::io::Error>(event)
        });
    // Stop the stream right after the injected error.
    let stream = stream.scan(false, |failed, item| {
        let done = *failed;
        *failed = item.is_err();
        futures::future::ready((!done).then_some(item))
    });
    let mut response = Body::from_stream(stream).into_response();
    response.headers_mut().insert(
        "content-type",
        HeaderValue::from_static("text/event-stream"),
    );
    response
        .headers_mut()
        .insert("cache-control", HeaderValue::from_static("no-cache"));
    response
}

fn rand_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(std::process::id().into());
    hasher.finish()
}
