//! Sending a turn and streaming its reply (`use_chat_stream`): the shown
//! messages change at once, the reply streams into a `LiveReply`, Stop
//! aborts it, and a turn refused before it started puts everything back.

use leptos::prelude::*;
use leptos_router::NavigateOptions;

use super::{
    live_reply::LiveReply,
    state::{ChatState, Turn},
};
use crate::model::{
    chat::{drop_trailing_replies, ChatEvent, ChatRequest, MessageView},
    domain::{MessageStatus, Speaker},
};

/// What the page does with a conversation's stream.
#[derive(Clone, Copy)]
pub struct ChatStream {
    /// Starts a turn (ignored while one is in flight, or with no text).
    pub send: Callback<Turn>,
    /// Stops the reply in flight, keeping what arrived.
    pub stop: Callback<()>,
}

/// Wires `chat`'s turns to `/chat/send`. Call it in the page's component:
/// replies belong to the page's owner, not to whatever was clicked.
pub fn use_chat_stream(chat: ChatState) -> ChatStream {
    let abort = abort_slot();
    let stop = Callback::new(move |()| {
        if let Some(handle) = abort.get_value() {
            handle.abort();
        }
    });
    let navigate = leptos_router::hooks::use_navigate();
    let page_owner = Owner::current().expect("a component runs under an owner");
    let send = Callback::new(move |turn: Turn| {
        let text = match &turn {
            Turn::New => chat.draft.get_untracked(),
            Turn::Regenerate => String::new(),
            Turn::Edit { text, .. } => text.clone(),
        }
        .trim()
        .to_owned();
        let regenerate = turn == Turn::Regenerate;
        let turn_is_new = turn == Turn::New;
        if chat.sending.get_untracked() || (!regenerate && text.is_empty()) {
            return;
        }
        let edited = match turn {
            Turn::Edit { id, .. } => Some(id),
            _ => None,
        };
        let chosen_model = chat.model.get_untracked();
        // A regenerated reply stores no message of the user's.
        let turn_key = (!regenerate).then(|| chat.turn_key_for(&text));
        let request = ChatRequest {
            conversation_id: chat.conversation_id.get_untracked(),
            text: text.clone(),
            model: chosen_model.clone(),
            regenerate,
            edit_message_id: edited,
            thinking_budget: chat
                .think
                .get_untracked()
                .then_some(chat.thinking_budget.get_untracked()),
            turn_key: turn_key.clone(),
        };
        let before = chat
            .local
            .get_untracked()
            .or_else(|| chat.loaded.get_untracked())
            .unwrap_or_default();
        let mut shown = before.clone();
        if let Some(id) = edited {
            // The edited message and what followed it give way to the new turn.
            if let Some(at) = shown.iter().position(|m| m.id == id) {
                shown.truncate(at);
            }
        }
        if regenerate {
            drop_trailing_replies(&mut shown, |message| message.role);
        } else {
            shown.push(MessageView {
                id: 0,
                role: Speaker::User,
                content: text.clone(),
                model: chosen_model.clone(),
                status: MessageStatus::Complete,
                error: None,
                paid_by: None,
                input_tokens: 0,
                output_tokens: 0,
                cost_micro_usd: 0,
                cache_read_tokens: 0,
                saved_micro_usd: 0,
                thinking: None,
            });
        }
        chat.local.set(Some(shown));
        // The composer keeps what it holds unless that is what was sent.
        if turn_is_new {
            chat.draft.set(String::new());
        }
        chat.page_error.set(None);
        chat.sending.set(true);
        // Owned by the page, not by whatever was clicked: an edited message
        // is replaced (its component and owner disposed) as the turn starts.
        let reply = page_owner.with(|| LiveReply::new(chosen_model));
        chat.live.set(Some(reply));
        let navigate = navigate.clone();

        leptos::task::spawn_local(async move {
            let Some(handle) = AbortHandle::new() else {
                chat.page_error
                    .set(Some("This browser cannot stream replies.".into()));
                chat.sending.set(false);
                return;
            };
            abort.set_value(Some(handle.clone()));
            let mut started = false;
            let mut on_event = |event: ChatEvent| {
                if let ChatEvent::Started {
                    conversation_id: id,
                    user_message_id,
                    ..
                } = &event
                {
                    started = true;
                    chat.lost_try.set_value(None);
                    // The message just sent can be edited once it has an id.
                    if let Some(stored) = *user_message_id {
                        chat.local.update(|messages| {
                            let sent = messages
                                .iter_mut()
                                .flatten()
                                .rev()
                                .find(|m| m.role == Speaker::User && m.id == 0);
                            if let Some(sent) = sent {
                                sent.id = stored;
                            }
                        });
                    }
                    if chat.conversation_id.get_untracked() != Some(*id) {
                        chat.conversation_id.set(Some(*id));
                        navigate(
                            &format!("/chat/{id}"),
                            NavigateOptions {
                                replace: true,
                                scroll: false,
                                ..Default::default()
                            },
                        );
                    }
                    chat.sidebar_version.update(|v| *v += 1);
                }
                reply.apply(&event);
            };
            let result = handle.send(&request, &mut on_event).await;
            abort.set_value(None);
            match result {
                Err(message) if !started => {
                    // No reply began: put the text back and say why (the
                    // user's own Stop needs no explaining; the sidebar is
                    // asked again in case the server had kept the message).
                    chat.local.set(Some(before));
                    chat.live.set(None);
                    // Sent again as it is, it takes the place of this try
                    // if the server stored it.
                    if let Some(key) = turn_key {
                        chat.lost_try.set_value(Some((text.clone(), key)));
                    }
                    // Nothing typed is lost: a refused message (or edit,
                    // if the box is free) goes back into the composer.
                    if turn_is_new || chat.draft.with_untracked(|d| d.trim().is_empty()) {
                        chat.draft.set(text);
                    }
                    if handle.was_aborted() {
                        chat.sidebar_version.update(|v| *v += 1);
                    } else {
                        chat.page_error.set(Some(message));
                    }
                    chat.sending.set(false);
                    return;
                }
                Err(_) if handle.was_aborted() => reply.status.set(MessageStatus::Stopped),
                Err(message) => {
                    reply.status.set(MessageStatus::Error);
                    reply
                        .error
                        .set(Some(format!("{message} The reply so far was kept.")));
                }
                Ok(()) if reply.status.get_untracked() == MessageStatus::Streaming => {
                    reply.status.set(MessageStatus::Stopped)
                }
                Ok(()) => {}
            }
            chat.local
                .update(|messages| messages.get_or_insert_with(Vec::new).push(reply.to_view()));
            chat.live.set(None);
            chat.sending.set(false);
        });
    });
    ChatStream { send, stop }
}

/// Where the page keeps the handle of the send in flight. In the browser the
/// handle wraps a JS object (thread-local storage); on the server it is empty
/// and must be `Send`, because a rendered page may be dropped on any thread.
#[cfg(feature = "hydrate")]
type AbortSlot = StoredValue<Option<AbortHandle>, LocalStorage>;
#[cfg(not(feature = "hydrate"))]
type AbortSlot = StoredValue<Option<AbortHandle>>;

fn abort_slot() -> AbortSlot {
    #[cfg(feature = "hydrate")]
    return StoredValue::new_local(None);
    #[cfg(not(feature = "hydrate"))]
    StoredValue::new(None)
}

/// Aborts an in-flight send (Stop). Browser-only; inert on the server.
#[derive(Clone)]
struct AbortHandle {
    #[cfg(feature = "hydrate")]
    controller: web_sys::AbortController,
}

impl AbortHandle {
    #[cfg(feature = "hydrate")]
    fn new() -> Option<Self> {
        web_sys::AbortController::new()
            .ok()
            .map(|controller| Self { controller })
    }

    #[cfg(not(feature = "hydrate"))]
    fn new() -> Option<Self> {
        None
    }

    fn abort(&self) {
        #[cfg(feature = "hydrate")]
        self.controller.abort();
    }

    fn was_aborted(&self) -> bool {
        #[cfg(feature = "hydrate")]
        return self.controller.signal().aborted();
        #[cfg(not(feature = "hydrate"))]
        false
    }

    async fn send(
        &self,
        request: &ChatRequest,
        on_event: &mut dyn FnMut(ChatEvent),
    ) -> Result<(), String> {
        #[cfg(feature = "hydrate")]
        {
            use crate::components::chat::stream::{send, SendError};
            send(request, &self.controller.signal(), on_event)
                .await
                .map_err(|err| match err {
                    SendError::Refused(message) => message,
                    SendError::Interrupted(_) => {
                        "The connection to the server was lost.".to_owned()
                    }
                })
        }
        #[cfg(not(feature = "hydrate"))]
        {
            let _ = (request, on_event);
            Err("Sending needs the page to finish loading.".to_owned())
        }
    }
}
