//! The conversation list: newest first, new chat, rename, delete.

use leptos::{ev, prelude::*};

use crate::{
    api::chat::{delete_conversation, list_conversations, rename_conversation},
    model::chat::ConversationSummary,
};

#[component]
pub fn Sidebar(
    /// Bumped by the page whenever the list may have changed.
    version: RwSignal<u32>,
    #[prop(into)] current: Signal<Option<i64>>,
    on_new_chat: Callback<()>,
    /// Called after the open conversation was deleted.
    on_deleted: Callback<i64>,
) -> impl IntoView {
    let conversations = Resource::new(move || version.get(), |_| list_conversations());
    let error = RwSignal::new(None::<String>);
    view! {
        <aside class="sidebar" aria-label="Conversations">
            <button type="button" class="button primary new-chat" on:click=move |_| on_new_chat.run(())>
                "New chat"
            </button>
            {move || error.get().map(|message| view! { <p class="alert alert-error" role="alert">{message}</p> })}
            <Transition fallback=|| view! { <p class="muted" aria-busy="true">"Loading…"</p> }>
                {move || conversations.get().map(|result| match result {
                    Ok(list) if list.is_empty() => view! { <p class="muted empty-list">"No conversations yet."</p> }.into_any(),
                    Ok(list) => view! {
                        <ul class="conversation-list">
                            {list
                                .into_iter()
                                .map(|c| view! { <ConversationItem conversation=c current version error on_deleted /> })
                                .collect_view()}
                        </ul>
                    }
                    .into_any(),
                    Err(err) => view! { <p class="alert alert-error" role="alert">{err.to_string()}</p> }.into_any(),
                })}
            </Transition>
        </aside>
    }
}

#[component]
fn ConversationItem(
    conversation: ConversationSummary,
    current: Signal<Option<i64>>,
    version: RwSignal<u32>,
    error: RwSignal<Option<String>>,
    on_deleted: Callback<i64>,
) -> impl IntoView {
    let id = conversation.id;
    let title = RwSignal::new(conversation.title.clone());
    let editing = RwSignal::new(false);
    let is_current = move || current.get() == Some(id);

    let save_title = move |new_title: String| {
        editing.set(false);
        if new_title.trim().is_empty() || new_title == title.get_untracked() {
            return;
        }
        let previous = title.get_untracked();
        title.set(new_title.clone());
        leptos::task::spawn_local(async move {
            if let Err(err) = rename_conversation(id, new_title).await {
                title.set(previous);
                error.set(Some(err.to_string()));
            }
        });
    };
    let delete = move |_| {
        let confirmed = window()
            .confirm_with_message(&format!(
                "Delete \"{}\"? This cannot be undone.",
                title.get_untracked()
            ))
            .unwrap_or(false);
        if !confirmed {
            return;
        }
        leptos::task::spawn_local(async move {
            match delete_conversation(id).await {
                Ok(()) => {
                    error.set(None);
                    on_deleted.run(id);
                    version.update(|v| *v += 1);
                }
                Err(err) => error.set(Some(err.to_string())),
            }
        });
    };

    view! {
        <li class="conversation" class:current=is_current>
            <Show
                when=move || editing.get()
                fallback=move || {
                    view! {
                        <a href=format!("/chat/{id}") aria-current=move || is_current().then_some("page")>
                            {move || title.get()}
                        </a>
                    }
                }
            >
                <input
                    class="rename-input"
                    aria-label="Conversation title"
                    prop:value=move || title.get_untracked()
                    autofocus
                    on:keydown=move |event: ev::KeyboardEvent| match event.key().as_str() {
                        "Enter" => save_title(event_target_value(&event)),
                        "Escape" => editing.set(false),
                        _ => {}
                    }
                    on:blur=move |event| save_title(event_target_value(&event))
                />
            </Show>
            <span class="conversation-actions">
                <button type="button" class="icon-button" title="Rename" aria-label="Rename conversation" on:click=move |_| editing.set(true)>
                    <svg viewBox="0 0 24 24" width="16" height="16" aria-hidden="true">
                        <path d="M4 20h4L19 9l-4-4L4 16v4z" fill="none" stroke="currentColor" stroke-width="2" stroke-linejoin="round" />
                    </svg>
                </button>
                <button type="button" class="icon-button" title="Delete" aria-label="Delete conversation" on:click=delete>
                    <svg viewBox="0 0 24 24" width="16" height="16" aria-hidden="true">
                        <path d="M5 7h14M10 7V4h4v3M7 7l1 13h8l1-13" fill="none" stroke="currentColor" stroke-width="2" stroke-linejoin="round" />
                    </svg>
                </button>
            </span>
        </li>
    }
}
