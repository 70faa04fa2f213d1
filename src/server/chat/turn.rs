//! One chat turn: store the user's message, admit the call (the same
//! lifecycle as the gateway's, `server::calls`), stream the reply from
//! Anthropic to the browser, and record how it ended.
//!
//! The upstream call runs in its own task. When the browser goes away (Stop,
//! closed tab) or shutdown's grace runs out, the task notices, drops the
//! upstream request — which cancels it — and keeps the partial reply with
//! status `stopped`.

use std::sync::Arc;

use bytes::Bytes;
use futures::{Stream, StreamExt};
use serde_json::json;
use tokio::sync::mpsc;

use super::{
    history::{effective_system_prompt, mark_cache_breakpoint, title_from, upstream_messages},
    relay::{drain, relay},
};
use crate::{
    error::AppError,
    model::{
        caching::PromptCaching,
        chat::{
            drop_trailing_replies, valid_turn_key, ChatEvent, ChatRequest, MIN_THINKING_BUDGET,
        },
        domain::{MessageStatus, PaidBy, Speaker},
    },
    server::{
        accounting::{CallEnd, CallOrigin},
        anthropic::{ForwardedHeaders, API_VERSION},
        calls::{self, estimate, Admission, Call, InputEstimate, Refusal},
        db::{
            conversations::{self, ConversationRow, MessageRow, ReplyUsage},
            users::UserRow,
        },
        limits::WorstCase,
        payer::RoutedKey,
        routing,
        state::AppState,
    },
};

/// Room left for the answer after the thinking, at least.
const ANSWER_ROOM: i64 = 1_024;

/// `max_tokens` for the turn, and the thinking budget if it thinks first.
/// Thinking is part of the reply's output, so `max_tokens` must exceed the
/// budget and leave room for the answer: on a user's key it grows by the
/// budget (within what the model can write); on the platform key the
/// plan's clamp stands and the budget shrinks below it, down to
/// Anthropic's minimum, under which thinking does not fit the plan (said
/// before any call, never a 400 from upstream).
fn fit_thinking(
    budget: Option<i64>,
    routed: &RoutedKey,
    model: &str,
) -> Result<(i64, Option<i64>), AppError> {
    let max_tokens = routed.chat_max_tokens();
    let Some(budget) = budget else {
        return Ok((max_tokens, None));
    };
    if budget < MIN_THINKING_BUDGET {
        return Err(AppError::Validation(format!(
            "A thinking budget is at least {MIN_THINKING_BUDGET} tokens."
        )));
    }
    if routed.plan().is_none() {
        let most = crate::model::models::find(model).map_or(i64::MAX, |m| m.max_output_tokens);
        let grown = budget.saturating_add(max_tokens);
        if grown > most {
            return Err(AppError::Validation(format!(
                "This model writes at most {most} tokens; choose a thinking budget of at most {}.",
                most - max_tokens
            )));
        }
        return Ok((grown, Some(budget)));
    }
    let fitted = budget.min(max_tokens - ANSWER_ROOM);
    if fitted < MIN_THINKING_BUDGET {
        return Err(AppError::Validation(format!(
            "Thinking needs replies longer than the {max_tokens} tokens your plan allows. \
             Turn thinking off, or add your own Anthropic key in Settings."
        )));
    }
    Ok((max_tokens, Some(fitted)))
}

/// Longest message keyward accepts from the chat page.
const MAX_MESSAGE_CHARS: usize = 100_000;

/// Validates and records the turn, reserves the platform budget when the
/// platform pays, then returns the NDJSON event stream.
pub async fn start_turn(
    state: AppState,
    user: UserRow,
    request: ChatRequest,
) -> Result<impl Stream<Item = Result<Bytes, std::io::Error>>, AppError> {
    if request.regenerate && request.edit_message_id.is_some() {
        return Err(AppError::Validation(
            "A turn either regenerates the last reply or edits a message, not both.".into(),
        ));
    }
    let request = take_the_place_of_a_lost_try(&state, &user, request).await?;
    let text = request.text.trim();
    if !request.regenerate && text.is_empty() {
        return Err(AppError::Validation("Type a message first.".into()));
    }
    if text.chars().count() > MAX_MESSAGE_CHARS {
        return Err(AppError::Validation(format!(
            "Messages can be at most {MAX_MESSAGE_CHARS} characters."
        )));
    }
    let routed = Arc::new(routing::route_call(&state, &user).await?);
    calls::check_model(&routed, &request.model).map_err(refused)?;
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
        None if request.edit_message_id.is_some() => {
            return Err(AppError::Validation(
                "There is no message to edit yet.".into(),
            ))
        }
        None => None,
    };
    let mut rows = match &existing {
        Some(conversation) => conversations::messages(&state.db, conversation.id).await?,
        None => Vec::new(),
    };
    if request.regenerate {
        drop_trailing_replies(&mut rows, |row| row.role);
    }
    // An edited message and what followed it are left out of the history.
    if let Some(edited) = request.edit_message_id {
        let at = rows
            .iter()
            .position(|m| m.id == edited && m.role == Speaker::User)
            .ok_or_else(|| {
                AppError::Validation(
                    "That message is no longer in this conversation. Reload the page.".into(),
                )
            })?;
        rows.truncate(at);
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
    let (max_tokens, thinking) = fit_thinking(request.thinking_budget, &routed, &request.model)?;
    let system = effective_system_prompt(
        existing.as_ref(),
        crate::server::db::users::system_prompt(&state.db, user.id).await?,
    );
    // Before anything is stored or sent: the worst case must fit the plan's
    // limits (platform key) or the user's caps (own key).
    let messages: Vec<_> = texts
        .iter()
        .map(|text| json!({ "role": "user", "content": text }))
        .collect();
    let mut prompt = json!({ "messages": messages });
    if let Some(system) = &system {
        prompt["system"] = json!(system);
    }
    let input_tokens = estimate::request_input_tokens(&prompt);
    let admission = Admission {
        routed: routed.clone(),
        origin: CallOrigin {
            user_id: user.id,
            ..CallOrigin::default()
        },
        model: request.model.clone(),
        worst: Some(WorstCase {
            input_tokens,
            output_tokens: max_tokens,
        }),
        input: InputEstimate::Known(input_tokens),
        stream: true,
        max_tokens: Some(max_tokens),
        thinking_budget: thinking,
    };
    // From here the `Call` owns the reservation: a request dropped while the
    // rows are written gives it back.
    let mut call = calls::admit(&state, admission).await.map_err(refused)?;
    let prepared = prepare_rows(
        &state,
        &user,
        &request,
        text,
        existing,
        rows,
        routed.paid_by(),
    )
    .await;
    let PreparedTurn {
        conversation,
        user_message_id,
        assistant_id,
        history,
    } = prepared?;
    call.attach_to_message(conversation.id, assistant_id);

    let mut history = history;
    // The plan's setting on the platform key; a user's own key caches for
    // five minutes (what Anthropic's clients default to).
    let caching = routed
        .plan()
        .map_or(PromptCaching::default(), |plan| plan.prompt_caching);
    mark_cache_breakpoint(&mut history, system.as_deref(), &request.model, caching);
    let mut body = json!({
        "model": request.model,
        "max_tokens": max_tokens,
        "stream": true,
        "messages": history,
    });
    if let Some(system) = system {
        body["system"] = json!(system);
    }
    if let Some(budget) = thinking {
        body["thinking"] = json!({ "type": "enabled", "budget_tokens": budget });
    }
    let started = ChatEvent::Started {
        conversation_id: conversation.id,
        title: conversation.title.clone(),
        user_message_id,
        assistant_message_id: assistant_id,
        paid_by: routed.paid_by(),
    };
    let (tx, rx) = mpsc::channel::<ChatEvent>(64);
    let turn = UpstreamCall {
        state: state.clone(),
        call,
        model: request.model,
        assistant_id,
        beta: caching.beta().map(http::HeaderValue::from_static),
    };
    state
        .tasks
        .spawn(turn.run(Bytes::from(body.to_string()), tx));

    let events = futures::stream::once(async move { started }).chain(tokio_stream_from(rx));
    Ok(events.map(|event| {
        let mut line = serde_json::to_vec(&event).unwrap_or_default();
        line.push(b'\n');
        Ok(Bytes::from(line))
    }))
}

/// A message sent again under the key of a try the browser lost (Stop
/// before the reply began, a dropped connection). The server may have
/// stored that try, and the page could not know: this turn takes its place
/// (as an edit of it would) instead of storing the message twice, or a new
/// conversation beside the first. Only while that try is the conversation's
/// last message of the user's, with the same text: a conversation that went
/// on since (in another tab, say) loses nothing, and the message is stored
/// as a turn of its own.
async fn take_the_place_of_a_lost_try(
    state: &AppState,
    user: &UserRow,
    mut request: ChatRequest,
) -> Result<ChatRequest, AppError> {
    let Some(key) = request.turn_key.as_deref() else {
        return Ok(request);
    };
    if !valid_turn_key(key) {
        return Err(AppError::Validation(
            "The chat request was malformed.".into(),
        ));
    }
    // A regenerated reply stores no message of the user's.
    if request.regenerate {
        request.turn_key = None;
        return Ok(request);
    }
    let stored = conversations::find_turn(&state.db, user.id, key)
        .await?
        .into_iter()
        .find(|(conversation_id, _, _)| {
            request
                .conversation_id
                .is_none_or(|id| id == *conversation_id)
        });
    let Some((conversation_id, message_id, text)) = stored else {
        return Ok(request);
    };
    let last = conversations::last_user_message(&state.db, conversation_id).await?;
    if last == Some(message_id) && text == request.text.trim() {
        request.conversation_id = Some(conversation_id);
        request.edit_message_id = Some(message_id);
    } else {
        // The key is taken in that conversation: this message goes without.
        request.turn_key = None;
    }
    Ok(request)
}

/// A refusal as the chat page words it.
fn refused(refusal: Refusal) -> AppError {
    match refusal {
        Refusal::ModelNotInPlan { model, allowed } => AppError::Validation(format!(
            "The model {model} is not available to you. Pick one of: {}. Add your own key in Settings for all models.",
            allowed.join(", ")
        )),
        Refusal::ServerToolNotInPlan { tool, plan } => AppError::Validation(format!(
            "Your plan \"{plan}\" does not allow Anthropic's server tools ({tool})."
        )),
        Refusal::Limit(err) => err,
    }
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
/// reply being regenerated, or the edited message and what followed it) and
/// a reply placeholder that records who pays — in one transaction, so a
/// failure part-way leaves the conversation as it was.
async fn prepare_rows(
    state: &AppState,
    user: &UserRow,
    request: &ChatRequest,
    text: &str,
    existing: Option<ConversationRow>,
    // The conversation as already loaded (trailing replies dropped when regenerating).
    mut rows: Vec<MessageRow>,
    paid_by: PaidBy,
) -> Result<PreparedTurn, AppError> {
    let now_ms = state.clock.now_ms();
    let mut tx = state.db.begin().await?;
    let mut conversation = match existing {
        Some(conversation) => conversation,
        None => {
            let title = title_from(text);
            conversations::create(&mut *tx, user.id, &title, &request.model, now_ms).await?
        }
    };
    let user_message_id = if request.regenerate {
        conversations::delete_trailing_assistant_messages(&mut *tx, conversation.id).await?;
        None
    } else {
        if let Some(edited) = request.edit_message_id {
            conversations::delete_from(&mut *tx, conversation.id, edited).await?;
            // The title came from the first message: it follows its edit.
            if rows.is_empty() {
                conversation.title = title_from(text);
                conversations::rename(&mut *tx, user.id, conversation.id, &conversation.title)
                    .await?;
            }
        }
        let id = conversations::insert_user_message(
            &mut *tx,
            conversation.id,
            text,
            request.turn_key.as_deref(),
            now_ms,
        )
        .await
        .map_err(|err| {
            // Two tries of one message at once (a retry while the first is
            // still being stored): the page offers it again.
            if crate::server::db::is_unique_violation(&err) {
                AppError::Validation(
                    "This message is still being saved from your last try. \
                     Send it again in a moment."
                        .into(),
                )
            } else {
                err.into()
            }
        })?;
        rows.push(MessageRow::new(
            id,
            Speaker::User,
            text.to_owned(),
            MessageStatus::Complete,
        ));
        Some(id)
    };
    conversations::touch(
        &mut *tx,
        conversation.id,
        &request.model,
        request.thinking_budget,
        now_ms,
    )
    .await?;
    let assistant_id = conversations::insert_assistant_placeholder(
        &mut *tx,
        conversation.id,
        &request.model,
        paid_by,
        now_ms,
    )
    .await?;
    tx.commit().await?;
    let history = upstream_messages(&rows);
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
    call: Call,
    model: String,
    assistant_id: i64,
    /// The `anthropic-beta` the turn's features need, if any.
    beta: Option<http::HeaderValue>,
}

impl UpstreamCall {
    async fn run(mut self, body: Bytes, tx: mpsc::Sender<ChatEvent>) {
        let mut text = String::new();
        let mut thinking = String::new();
        let forwarded = ForwardedHeaders {
            version: http::HeaderValue::from_static(API_VERSION),
            beta: self.beta.take(),
        };
        let cut = self.call.cut();
        let mut rest = None;
        // The browser leaving, the account being disabled or shutdown's
        // grace running out ends the call where it is, also before
        // Anthropic has answered.
        let end = tokio::select! {
            _ = tx.closed() => CallEnd::Stopped,
            _ = cut.cancelled() => CallEnd::Stopped,
            end = async {
                match self.call.send("/v1/messages", &forwarded, body, true).await {
                    Err(err) => CallEnd::Failed(err),
                    Ok(response) => {
                        self.call.observed.request_id = response
                            .headers()
                            .get("request-id")
                            .and_then(|v| v.to_str().ok())
                            .map(str::to_owned);
                        relay(response, &tx, &mut self.call, &mut text, &mut thinking, &mut rest)
                            .await
                    }
                }
            } => end,
        };
        self.finish(end, text, thinking, &tx).await;
        // After the reply is recorded: the body's last bytes, so the
        // connection goes back to the pool.
        if let Some(rest) = rest {
            drain(rest).await;
        }
    }

    async fn finish(
        self,
        end: CallEnd,
        text: String,
        thinking: String,
        tx: &mpsc::Sender<ChatEvent>,
    ) {
        let UpstreamCall {
            state,
            call,
            model,
            assistant_id,
            beta: _,
        } = self;
        let paid_by = call.routed().paid_by();
        let own_key = paid_by == PaidBy::OwnKey;
        let (status, error) = match &end {
            CallEnd::Complete => (MessageStatus::Complete, None),
            CallEnd::Stopped => (MessageStatus::Stopped, None),
            // A reply cut short keeps what arrived; the message says why.
            CallEnd::Failed(err) if !text.is_empty() || !thinking.is_empty() => {
                (MessageStatus::Stopped, Some(err.user_message(own_key)))
            }
            CallEnd::Failed(err) => (MessageStatus::Error, Some(err.user_message(own_key))),
        };
        let billed = call.end_and_wait(end).await;
        let usage = billed.map_or(ReplyUsage::default(), |billed| ReplyUsage {
            input_tokens: billed.tokens.input as i64,
            output_tokens: billed.tokens.output as i64,
            cost_micro_usd: billed.cost_micro_usd,
            cache_read_tokens: billed.tokens.cache_read as i64,
            saved_micro_usd: crate::model::prices::caching_saved_micro_usd(&model, billed.tokens),
        });
        let saved = conversations::finish_assistant_message(
            &state.db,
            assistant_id,
            &text,
            status,
            error.as_deref(),
            (!thinking.is_empty()).then_some(thinking.as_str()),
            usage,
        )
        .await;
        if let Err(err) = saved {
            tracing::error!(error = %err, "could not save the end of a reply");
        }
        tracing::info!(
            status = status.as_str(),
            source = paid_by.as_str(),
            model = %model,
            input_tokens = usage.input_tokens,
            output_tokens = usage.output_tokens,
            cache_read_tokens = usage.cache_read_tokens,
            "chat turn finished"
        );
        let _ = tx
            .send(ChatEvent::Finished {
                status,
                error,
                input_tokens: usage.input_tokens,
                output_tokens: usage.output_tokens,
                cost_micro_usd: usage.cost_micro_usd,
                cache_read_tokens: usage.cache_read_tokens,
                saved_micro_usd: usage.saved_micro_usd,
            })
            .await;
    }
}
