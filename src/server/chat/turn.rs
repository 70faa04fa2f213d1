//! One chat turn: store the user's message, route the call, stream the reply
//! from Anthropic to the browser, and record how it ended.
//!
//! The upstream call runs in its own task. When the browser goes away (Stop,
//! closed tab) the task notices, drops the upstream request — which cancels
//! it — and keeps the partial reply with status `stopped`.

use std::time::Instant;

use bytes::Bytes;
use futures::{Stream, StreamExt};
use serde_json::json;
use tokio::sync::mpsc;

use super::history::{title_from, upstream_messages};
use crate::{
    error::AppError,
    model::{
        chat::{ChatEvent, ChatRequest},
        models::{self, TokenCounts},
    },
    server::{
        anthropic::{
            parse_event, sse::SseParser, AnthropicClient, StreamEvent, UpstreamError, Usage,
            API_VERSION, STREAM_IDLE_TIMEOUT,
        },
        db::{
            conversations::{self, ConversationRow, MessageRow, MessageStatus},
            ledger::{self, LedgerRow},
            usage::Reservation,
            user_keys,
            users::UserRow,
        },
        limits,
        routing::{self, KeySource, RoutedKey},
        state::AppState,
    },
};

/// Longest message keyward accepts from the chat page.
const MAX_MESSAGE_CHARS: usize = 100_000;

/// Validates and records the turn, reserves the platform budget when the
/// platform pays, then returns the NDJSON event stream.
pub async fn start_turn(
    state: AppState,
    user: UserRow,
    request: ChatRequest,
) -> Result<impl Stream<Item = Result<Bytes, std::io::Error>>, AppError> {
    let text = request.text.trim();
    if !request.regenerate && text.is_empty() {
        return Err(AppError::Validation("Type a message first.".into()));
    }
    if text.chars().count() > MAX_MESSAGE_CHARS {
        return Err(AppError::Validation(format!(
            "Messages can be at most {MAX_MESSAGE_CHARS} characters."
        )));
    }
    let routed = routing::route_call(&state, &user).await?;
    let allowed = routed.allowed_models();
    if !allowed.contains(&request.model) {
        return Err(AppError::Validation(format!(
            "The model {} is not available to you. Pick one of: {}. Add your own key in Settings for all models.",
            request.model,
            allowed.join(", ")
        )));
    }
    let existing = match request.conversation_id {
        Some(id) => Some(
            conversations::find_owned(&state.db, user.id, id)
                .await?
                .ok_or(AppError::NotFound)?,
        ),
        None if request.regenerate => {
            return Err(AppError::Validation(
                "There is no reply to regenerate yet.".into(),
            ))
        }
        None => None,
    };
    let mut rows = match &existing {
        Some(conversation) => conversations::messages(&state.db, conversation.id).await?,
        None => Vec::new(),
    };
    if request.regenerate {
        while rows.last().is_some_and(|m| m.role == "assistant") {
            rows.pop();
        }
    }
    let mut texts: Vec<&str> = rows.iter().map(|m| m.content.as_str()).collect();
    if !request.regenerate {
        texts.push(text);
    }
    if texts.is_empty() {
        return Err(AppError::Validation(
            "There is no message to reply to.".into(),
        ));
    }
    let max_tokens = routed.chat_max_tokens();
    // Before anything is stored or sent: the platform's worst case must fit the plan.
    let reservation = match &routed.plan {
        Some(plan) => {
            let worst_case = limits::estimate_input_tokens(&texts) + max_tokens;
            Some(limits::reserve_platform_call(&state, user.id, plan, worst_case).await?)
        }
        None => None,
    };
    let prepared = prepare_rows(
        &state,
        &user,
        &request,
        text,
        existing,
        rows,
        routed.source.as_str(),
    )
    .await;
    let PreparedTurn {
        conversation,
        user_message_id,
        assistant_id,
        history,
    } = match prepared {
        Ok(prepared) => prepared,
        Err(err) => {
            if let Some(reservation) = &reservation {
                limits::finish_reservation(&state, reservation, 0).await;
            }
            return Err(err);
        }
    };

    let body = json!({
        "model": request.model,
        "max_tokens": max_tokens,
        "stream": true,
        "messages": history,
    });
    let started = ChatEvent::Started {
        conversation_id: conversation.id,
        title: conversation.title.clone(),
        user_message_id,
        assistant_message_id: assistant_id,
        paid_by: routed.source.as_str().to_owned(),
    };
    let (tx, rx) = mpsc::channel::<ChatEvent>(64);
    let call = UpstreamCall {
        state,
        routed,
        reservation,
        model: request.model,
        user_id: user.id,
        conversation_id: conversation.id,
        assistant_id,
    };
    tokio::spawn(call.run(Bytes::from(body.to_string()), tx));

    let events = futures::stream::once(async move { started }).chain(tokio_stream_from(rx));
    Ok(events.map(|event| {
        let mut line = serde_json::to_vec(&event).unwrap_or_default();
        line.push(b'\n');
        Ok(Bytes::from(line))
    }))
}

/// What `prepare_rows` stored: the conversation, the user's message (none
/// when regenerating), the reply placeholder, and the history to send.
struct PreparedTurn {
    conversation: ConversationRow,
    user_message_id: Option<i64>,
    assistant_id: i64,
    history: Vec<serde_json::Value>,
}

/// Creates the conversation if needed, stores the user's message (or drops the
/// reply being regenerated) and a reply placeholder that records who pays.
async fn prepare_rows(
    state: &AppState,
    user: &UserRow,
    request: &ChatRequest,
    text: &str,
    existing: Option<ConversationRow>,
    // The conversation as already loaded (trailing replies dropped when regenerating).
    mut rows: Vec<MessageRow>,
    paid_by: &str,
) -> Result<PreparedTurn, AppError> {
    let conversation = match existing {
        Some(conversation) => conversation,
        None => {
            conversations::create(&state.db, user.id, &title_from(text), &request.model).await?
        }
    };
    let user_message_id = if request.regenerate {
        conversations::delete_trailing_assistant_messages(&state.db, conversation.id).await?;
        None
    } else {
        let id = conversations::insert_user_message(&state.db, conversation.id, text).await?;
        rows.push(MessageRow {
            id,
            role: "user".into(),
            content: text.to_owned(),
            model: String::new(),
            status: "complete".into(),
            error: None,
            paid_by: None,
            input_tokens: 0,
            output_tokens: 0,
            cost_micro_usd: 0,
            created_at: 0,
        });
        Some(id)
    };
    conversations::touch(&state.db, conversation.id, &request.model).await?;
    let history = upstream_messages(&rows);
    let assistant_id = conversations::insert_assistant_placeholder(
        &state.db,
        conversation.id,
        &request.model,
        paid_by,
    )
    .await?;
    Ok(PreparedTurn {
        conversation,
        user_message_id,
        assistant_id,
        history,
    })
}

fn tokio_stream_from(mut rx: mpsc::Receiver<ChatEvent>) -> impl Stream<Item = ChatEvent> {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

/// How a streamed reply ended.
enum Ending {
    Complete,
    Stopped,
    Failed(UpstreamError),
}

struct UpstreamCall {
    state: AppState,
    routed: RoutedKey,
    reservation: Option<Reservation>,
    model: String,
    user_id: i64,
    conversation_id: i64,
    assistant_id: i64,
}

/// What one upstream call reported, for the ledger.
#[derive(Default)]
struct CallStats {
    text: String,
    usage: Usage,
    ttft_ms: Option<i64>,
    request_id: Option<String>,
}

impl UpstreamCall {
    async fn run(self, body: Bytes, tx: mpsc::Sender<ChatEvent>) {
        let started_at = Instant::now();
        let client = AnthropicClient::new(
            self.state.http.clone(),
            self.state.config.anthropic_base_url.clone(),
        );
        let mut stats = CallStats::default();
        let ending = match client
            .post_messages(&self.routed.secret, API_VERSION, body, true)
            .await
        {
            Err(err) => {
                stats.request_id = err.request_id();
                Ending::Failed(err)
            }
            Ok(response) => {
                stats.request_id = response
                    .headers()
                    .get("request-id")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned);
                relay(response, &tx, &mut stats, started_at).await
            }
        };
        self.finish(ending, stats, started_at, &tx).await;
    }

    async fn finish(
        self,
        ending: Ending,
        stats: CallStats,
        started_at: Instant,
        tx: &mpsc::Sender<ChatEvent>,
    ) {
        let CallStats {
            text,
            usage,
            ttft_ms,
            request_id,
        } = stats;
        let (status, error, metric) = match &ending {
            Ending::Complete => (MessageStatus::Complete, None, "200".to_owned()),
            Ending::Stopped => (MessageStatus::Stopped, None, "stopped".to_owned()),
            Ending::Failed(err) => (
                MessageStatus::Error,
                Some(err.user_message(self.routed.source == KeySource::User)),
                err.label(),
            ),
        };
        if let Ending::Failed(err) = &ending {
            tracing::warn!(error = %err.label(), source = self.routed.source.as_str(), "upstream call failed");
            if err.is_key_rejection() {
                routing::note_key_rejection(&self.state, &self.routed).await;
            }
        }
        // A cut stream keeps what arrived; the message says so.
        let status = match (&ending, text.is_empty()) {
            (Ending::Failed(UpstreamError::StreamCut), false) => MessageStatus::Stopped,
            _ => status,
        };
        self.state
            .metrics
            .record_upstream(self.routed.source.as_str(), &metric);
        let tokens = TokenCounts {
            input: usage.input_tokens,
            output: usage.output_tokens,
            cache_creation: usage.cache_creation_input_tokens,
            cache_read: usage.cache_read_input_tokens,
        };
        let cost = models::cost_micro_usd(&self.model, tokens) as i64;
        let (input, output) = (usage.input_tokens as i64, usage.output_tokens as i64);
        let used =
            (tokens.input + tokens.output + tokens.cache_creation + tokens.cache_read) as i64;
        if let Some(reservation) = &self.reservation {
            limits::finish_reservation(&self.state, reservation, used).await;
        }
        let latency_ms = started_at.elapsed().as_millis() as i64;
        let entry = LedgerRow {
            at: self.state.clock.now_ms(),
            user_id: self.user_id,
            conversation_id: Some(self.conversation_id),
            message_id: Some(self.assistant_id),
            token_id: None,
            key_source: self.routed.source.as_str(),
            model: self.model.clone(),
            input_tokens: input,
            output_tokens: output,
            cache_creation_tokens: tokens.cache_creation as i64,
            cache_read_tokens: tokens.cache_read as i64,
            cost_micro_usd: cost,
            status: metric.clone(),
            error_type: match &ending {
                Ending::Failed(err) => Some(err.error_type()),
                _ => None,
            },
            latency_ms,
            ttft_ms,
            request_id,
        };
        if let Err(err) = ledger::insert(&self.state.db, &entry).await {
            tracing::error!(error = %err, "could not write the ledger row of an upstream call");
        }
        let saved = conversations::finish_assistant_message(
            &self.state.db,
            self.assistant_id,
            &text,
            status,
            error.as_deref(),
            input,
            output,
            cost,
        )
        .await;
        if let Err(err) = saved {
            tracing::error!(error = %err, "could not save the end of a reply");
        }
        if let (Some(key_id), Ending::Complete | Ending::Stopped) =
            (self.routed.user_key_id, &ending)
        {
            let _ = user_keys::mark_used(&self.state.db, key_id).await;
        }
        tracing::info!(
            status = status.as_str(),
            source = self.routed.source.as_str(),
            model = %self.model,
            input_tokens = input,
            output_tokens = output,
            latency_ms,
            "chat turn finished"
        );
        let _ = tx
            .send(ChatEvent::Finished {
                status: status.as_str().to_owned(),
                error,
                input_tokens: input,
                output_tokens: output,
                cost_micro_usd: cost,
            })
            .await;
    }
}

/// Relays text deltas to the browser until the reply ends, the browser
/// leaves, or the stream fails. Dropping `response` cancels the upstream call.
async fn relay(
    response: reqwest::Response,
    tx: &mpsc::Sender<ChatEvent>,
    stats: &mut CallStats,
    started_at: Instant,
) -> Ending {
    let mut chunks = response.bytes_stream();
    let mut parser = SseParser::new();
    loop {
        let chunk = tokio::select! {
            _ = tx.closed() => return Ending::Stopped,
            chunk = tokio::time::timeout(STREAM_IDLE_TIMEOUT, chunks.next()) => chunk,
        };
        let bytes = match chunk {
            Err(_) => return Ending::Failed(UpstreamError::Timeout),
            Ok(None) => return Ending::Failed(UpstreamError::StreamCut),
            Ok(Some(Err(_))) => return Ending::Failed(UpstreamError::StreamCut),
            Ok(Some(Ok(bytes))) => bytes,
        };
        for raw in parser.push(&bytes) {
            let Ok(event) = parse_event(&raw) else {
                tracing::warn!(event = %raw.event, "skipping an unreadable stream event");
                continue;
            };
            match event {
                StreamEvent::MessageStart {
                    usage: reported, ..
                }
                | StreamEvent::MessageDelta {
                    usage: reported, ..
                } => stats.usage.merge(&reported),
                StreamEvent::TextDelta { text: delta, .. } => {
                    stats
                        .ttft_ms
                        .get_or_insert_with(|| started_at.elapsed().as_millis() as i64);
                    stats.text.push_str(&delta);
                    if tx.send(ChatEvent::Delta { text: delta }).await.is_err() {
                        return Ending::Stopped;
                    }
                }
                StreamEvent::MessageStop => return Ending::Complete,
                StreamEvent::Error { kind, message } => {
                    return Ending::Failed(UpstreamError::StreamError { kind, message })
                }
                _ => {}
            }
        }
    }
}
