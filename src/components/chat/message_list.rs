//! The conversation's messages: the stored ones (or those this tab sent
//! since), Regenerate under the last reply, and the reply streaming now.

use leptos::prelude::*;

use super::{
    message::{AssistantMessage, StoredMessage},
    state::{ChatState, Turn},
};
use crate::{
    error::AppError,
    model::{
        chat::ConversationView,
        domain::{MessageStatus, Speaker},
    },
};

#[component]
pub fn MessageList(
    chat: ChatState,
    history: Resource<Result<Option<ConversationView>, AppError>>,
    send: Callback<Turn>,
) -> impl IntoView {
    let shown_messages = move || {
        chat.local
            .get()
            .or_else(|| {
                history
                    .get()
                    .and_then(Result::ok)
                    .flatten()
                    .map(|c| c.messages)
            })
            .unwrap_or_default()
    };
    // What a screen reader hears of a reply: that it began and how it
    // ended, never each token as it streams.
    let announcement = move || {
        let status = match chat.live.get() {
            Some(reply) => Some(reply.status.get()),
            // Only what this tab just sent is news; a loaded history is not.
            None => chat.local.with(|messages| {
                messages
                    .as_ref()?
                    .last()
                    .filter(|m| m.role == Speaker::Assistant)
                    .map(|m| m.status)
            }),
        };
        match status {
            Some(MessageStatus::Streaming) => "Claude is replying…",
            Some(MessageStatus::Complete) => "Claude replied.",
            Some(MessageStatus::Stopped) => "The reply stopped; what arrived is kept.",
            Some(MessageStatus::Error) => "The reply failed.",
            None => "",
        }
    };
    let on_edit = Callback::new(move |(id, text): (i64, String)| send.run(Turn::Edit { id, text }));
    let can_edit = Signal::derive(move || !chat.sending.get() && chat.live.get().is_none());

    view! {
        <p class="visually-hidden" role="status" data-testid="reply-announcement">{announcement}</p>
        <Transition fallback=|| view! { <p class="muted" aria-busy="true">"Loading conversation…"</p> }>
            {move || {
                if let Some(Err(err)) = history.get() {
                    let message = if err == AppError::NotFound {
                        "This conversation does not exist, or it is not yours.".to_owned()
                    } else {
                        err.to_string()
                    };
                    return view! { <p class="alert alert-error" role="alert">{message}</p> }.into_any();
                }
                let messages = shown_messages();
                if messages.is_empty() && chat.live.get().is_none() {
                    return view! {
                        <div class="empty-state">
                            <h1>"What can I help with?"</h1>
                            <p class="muted">"Ask anything. Replies stream in as Claude writes them."</p>
                        </div>
                    }
                    .into_any();
                }
                let can_regenerate = !chat.sending.get()
                    && chat.live.get().is_none()
                    && messages.last().is_some_and(|m| m.role == Speaker::Assistant);
                view! {
                    {messages
                        .into_iter()
                        .map(|message| view! { <StoredMessage message on_edit can_edit /> })
                        .collect_view()}
                    <Show when=move || can_regenerate>
                        <button type="button" class="button small-plain regenerate" on:click=move |_| send.run(Turn::Regenerate)>
                            "Regenerate"
                        </button>
                    </Show>
                }
                .into_any()
            }}
        </Transition>
        {move || chat.live.get().map(|reply| view! {
            <AssistantMessage
                content=reply.content
                thinking=reply.thinking
                status=reply.status
                error=reply.error
                paid_by=reply.paid_by.get()
                title=reply.title
            />
        })}
    }
}
