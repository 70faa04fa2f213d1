//! One chat turn: store the user's message, route the call, stream the reply
//! from Anthropic to the browser, and record how it ended.
//!
//! The upstream call runs in its own task. When the browser goes away (Stop,
//! closed tab) the task notices, drops the upstream request — which cancels
//! it — and keeps the partial reply with status `stopped`.

use std::{sync::Arc, time::Instant};

use bytes::Bytes;
use futures::{Stream, StreamExt};
use serde_json::json;
use tokio::sync::mpsc;

use super::history::{title_from, upstream_messages};
use crate::{
    error::AppError,
    model::chat::{ChatEvent, ChatRequest},
    server::{
        accounting::{CallEnd, CallInFlight, CallOrigin, CallReport},
        anthropic::{
            parse_event, sse::SseParser, StreamEvent, UpstreamError, UpstreamResponse, API_VERSION,
            STREAM_IDLE_TIMEOUT,
        },
        db::{
            conversations::{self, ConversationRow, MessageRow, MessageStatus},
            users::UserRow,
        },
        limits::{self, WorstCase},
        routing::{self, KeySource},
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
    if !routed.allows_model(&request.model) {
        return Err(AppError::Validation(format!(
            "The model {} is not available to you. Pick one of: {}. Add your own key in Settings for all models.",
            request.model,
            routed.allowed_models().join(", ")
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
    // Before anything is stored or sent: the worst case must fit the plan's
    // limits (platform key) or the user's caps (own key).
    let worst = WorstCase {
        input_tokens: limits::estimate_input_tokens(&texts),
        output_tokens: max_tokens,
    };
    let hold = limits::reserve_call(&state, user.id, &routed, &request.model, worst).await?;
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
            if let Some(hold) = &hold {
                limits::release_unused(&state, hold).await;
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
        state: state.clone(),
        call: CallInFlight {
            routed: Arc::new(routed),
            hold,
            model: request.model,
            origin: CallOrigin {
                user_id: user.id,
                conversation_id: Some(conversation.id),
                message_id: Some(assistant_id),
                token_id: None,
            },
            started_at: Instant::now(),
            slot: state.ledger.slot().await,
        },
        assistant_id,
    };
    state
        .tasks
        .spawn(call.run(Bytes::from(body.to_string()), tx));

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

struct UpstreamCall {
    state: AppState,
    call: CallInFlight,
    assistant_id: i64,
}

/// What one streamed reply produced.
#[derive(Default)]
struct ReplySoFar {
    text: String,
    report: CallReport,
}

impl UpstreamCall {
    async fn run(self, body: Bytes, tx: mpsc::Sender<ChatEvent>) {
        let mut reply = ReplySoFar::default();
        let end = match self
            .state
            .anthropic
            .post_messages(&self.call.routed.secret, API_VERSION, body, true)
            .await
        {
            Err(err) => {
                reply.report.request_id = err.request_id();
                CallEnd::Failed(err)
            }
            Ok(response) => {
                reply.report.request_id = response
                    .headers()
                    .get("request-id")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned);
                relay(response, &tx, &mut reply, self.call.started_at).await
            }
        };
        self.finish(end, reply, &tx).await;
    }

    async fn finish(self, end: CallEnd, reply: ReplySoFar, tx: &mpsc::Sender<ChatEvent>) {
        let UpstreamCall {
            state,
            call,
            assistant_id,
        } = self;
        let own_key = call.routed.source == KeySource::User;
        let (status, error) = match &end {
            CallEnd::Complete => (MessageStatus::Complete, None),
            CallEnd::Stopped => (MessageStatus::Stopped, None),
            // A cut stream keeps what arrived; the message says so.
            CallEnd::Failed(err @ UpstreamError::StreamCut) if !reply.text.is_empty() => {
                (MessageStatus::Stopped, Some(err.user_message(own_key)))
            }
            CallEnd::Failed(err) => (MessageStatus::Error, Some(err.user_message(own_key))),
        };
        if let CallEnd::Failed(err) = &end {
            call.note_failure(&state, err).await;
        }
        let source = call.routed.source.as_str();
        let model = call.model.clone();
        let billed = call.finish(&state, &end, reply.report).await;
        let (input, output) = (billed.tokens.input as i64, billed.tokens.output as i64);
        let saved = conversations::finish_assistant_message(
            &state.db,
            assistant_id,
            &reply.text,
            status,
            error.as_deref(),
            input,
            output,
            billed.cost_micro_usd,
        )
        .await;
        if let Err(err) = saved {
            tracing::error!(error = %err, "could not save the end of a reply");
        }
        tracing::info!(
            status = status.as_str(),
            source,
            model = %model,
            input_tokens = input,
            output_tokens = output,
            "chat turn finished"
        );
        let _ = tx
            .send(ChatEvent::Finished {
                status: status.as_str().to_owned(),
                error,
                input_tokens: input,
                output_tokens: output,
                cost_micro_usd: billed.cost_micro_usd,
            })
            .await;
    }
}

/// Relays text deltas to the browser until the reply ends, the browser
/// leaves, or the stream fails. Dropping `response` cancels the upstream call.
async fn relay(
    response: UpstreamResponse,
    tx: &mpsc::Sender<ChatEvent>,
    reply: &mut ReplySoFar,
    started_at: Instant,
) -> CallEnd {
    let mut chunks = response.bytes_stream();
    let mut parser = SseParser::new();
    loop {
        let chunk = tokio::select! {
            _ = tx.closed() => return CallEnd::Stopped,
            chunk = tokio::time::timeout(STREAM_IDLE_TIMEOUT, chunks.next()) => chunk,
        };
        let bytes = match chunk {
            Err(_) => return CallEnd::Failed(UpstreamError::Timeout),
            Ok(None) => return CallEnd::Failed(UpstreamError::StreamCut),
            Ok(Some(Err(_))) => return CallEnd::Failed(UpstreamError::StreamCut),
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
                } => reply.report.usage.merge(&reported),
                StreamEvent::TextDelta { text: delta, .. } => {
                    reply
                        .report
                        .ttft_ms
                        .get_or_insert_with(|| started_at.elapsed().as_millis() as i64);
                    reply.text.push_str(&delta);
                    if tx.send(ChatEvent::Delta { text: delta }).await.is_err() {
                        return CallEnd::Stopped;
                    }
                }
                StreamEvent::MessageStop => return CallEnd::Complete,
                StreamEvent::Error { kind, message } => {
                    return CallEnd::Failed(UpstreamError::StreamError { kind, message })
                }
                _ => {}
            }
        }
    }
}
