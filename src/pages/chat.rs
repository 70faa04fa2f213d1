//! `/chat` and `/chat/{id}`: the conversation list, the conversation, and the
//! message box. Replies stream in token by token; Stop keeps what arrived.
//! The page's state is a `ChatState`; sending and streaming a turn is
//! `use_chat_stream`'s; the messages are `MessageList`'s.

use leptos::{html, prelude::*};
use leptos_meta::Title;
use leptos_router::{hooks::use_params_map, NavigateOptions};

use crate::{
    api::chat::{get_chat_options, get_conversation},
    components::{
        chat::{
            composer::Composer,
            markdown_body::load_renderer,
            message_list::MessageList,
            sidebar::Sidebar,
            state::{ChatState, Turn},
            system_prompt::SystemPromptBox,
            turns::use_chat_stream,
        },
        guards::RequireUser,
    },
    model::{chat::DEFAULT_THINKING_BUDGET, SiteInfo},
};

#[component]
pub fn ChatPage() -> impl IntoView {
    view! {
        <Title text="Chat" />
        <RequireUser>
            <ChatView />
        </RequireUser>
    }
}

#[component]
fn ChatView() -> impl IntoView {
    let site = expect_context::<SiteInfo>();
    let params = use_params_map();
    let route_id = Memo::new(move |_| {
        params
            .read()
            .get("id")
            .and_then(|id| id.parse::<i64>().ok())
    });
    let chat = ChatState::new(route_id.get_untracked());
    let history = Resource::new(
        move || route_id.get(),
        |id| async move {
            match id {
                Some(id) => get_conversation(id).await.map(Some),
                None => Ok(None),
            }
        },
    );
    let options = Resource::new(|| (), |_| get_chat_options());
    Effect::new(move |_| {
        if let Some(Ok(conversation)) = history.get() {
            let budget = conversation.as_ref().and_then(|c| c.thinking_budget);
            chat.think.set(budget.is_some());
            chat.thinking_budget
                .set(budget.unwrap_or(DEFAULT_THINKING_BUDGET));
            chat.loaded.set(conversation.map(|c| c.messages));
        }
    });
    let stream = use_chat_stream(chat);
    let messages_box = NodeRef::<html::Div>::new();

    // Another conversation was opened (sidebar link, back button).
    Effect::new(move |_| {
        let id = route_id.get();
        if id != chat.conversation_id.get_untracked() {
            stream.stop.run(());
            chat.conversation_id.set(id);
            chat.clear();
        }
    });
    let models = RwSignal::new(Vec::<(String, String)>::new());
    Effect::new(move |_| {
        if let Some(Ok(opts)) = options.get() {
            let current = chat.model.get_untracked();
            if !opts.models.iter().any(|(_, id)| *id == current) {
                chat.model.set(opts.default_model.clone());
            }
            models.set(opts.models);
        }
    });
    // Keep the newest text in view while a reply streams.
    Effect::new(move |_| {
        chat.local.track();
        if let Some(reply) = chat.live.get() {
            reply.content.track();
        }
        if let Some(el) = messages_box.get() {
            el.set_scroll_top(el.scroll_height());
        }
    });

    let reload_conversation = Callback::new(move |()| history.refetch());
    let new_chat = Callback::new(move |()| {
        stream.stop.run(());
        chat.clear();
        chat.conversation_id.set(None);
        leptos_router::hooks::use_navigate()("/chat", NavigateOptions::default());
    });
    let on_deleted = Callback::new(move |id: i64| {
        if chat.conversation_id.get_untracked() == Some(id) {
            new_chat.run(());
        }
    });

    view! {
        // The first touch, click or focus on the page fetches the markdown
        // renderer, before a reply (or another conversation) needs it.
        <div class="chat-layout" on:pointerdown=move |_| load_renderer() on:focusin=move |_| load_renderer()>
            <Sidebar version=chat.sidebar_version current=chat.conversation_id on_new_chat=new_chat on_deleted />
            <section class="chat-main" aria-label="Conversation">
                <Show when=move || site.demo_mode>
                    <p class="demo-banner" role="note">
                        "Demo mode: replies are canned by the bundled mock, not written by Claude. Set ANTHROPIC_API_KEY to use the real API."
                    </p>
                </Show>
                <div class="messages" node_ref=messages_box>
                    // Apart from the messages (which re-render as a turn
                    // streams): it only changes with the loaded conversation.
                    <Transition fallback=|| ()>
                        {move || history.get().and_then(Result::ok).flatten().map(|c| view! {
                            <SystemPromptBox
                                conversation_id=c.id
                                prompt=c.system_prompt
                                own=c.own_system_prompt
                                on_saved=reload_conversation
                            />
                        })}
                    </Transition>
                    <MessageList chat history send=stream.send />
                </div>
                {move || chat.page_error.get().map(|message| view! { <p class="alert alert-error" role="alert">{message}</p> })}
                <Composer
                    draft=chat.draft
                    model=chat.model
                    models
                    sending=chat.sending
                    think=chat.think
                    thinking_budget=chat.thinking_budget
                    on_send=Callback::new(move |()| stream.send.run(Turn::New))
                    on_stop=stream.stop
                />
            </section>
        </div>
    }
}
