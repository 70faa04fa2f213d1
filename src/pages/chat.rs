//! `/chat` and `/chat/{id}`: the conversation list, the conversation, and the
//! message box. Replies stream in token by token; Stop keeps what arrived.

use leptos::{html, prelude::*};
use leptos_meta::Title;
use leptos_router::{hooks::use_params_map, NavigateOptions};

use crate::{
    api::chat::{get_chat_options, get_conversation},
    components::{
        chat::{
            composer::Composer,
            message::{usage_title, AssistantMessage, StoredMessage},
            sidebar::Sidebar,
            system_prompt::SystemPromptBox,
        },
        guards::RequireUser,
    },
    error::AppError,
    model::{
        chat::{ChatEvent, ChatRequest, MessageView, ReplyUsage, DEFAULT_THINKING_BUDGET},
        domain::{MessageStatus, PaidBy, Speaker},
        SiteInfo,
    },
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

/// What a send does.
#[derive(Clone, PartialEq, Eq)]
enum Turn {
    /// Sends the composer's text.
    New,
    /// Replaces the last reply.
    Regenerate,
    /// Replaces an earlier message of the user's, and what followed it.
    Edit { id: i64, text: String },
}

/// The reply being streamed right now.
#[derive(Clone, Copy)]
struct LiveReply {
    id: RwSignal<i64>,
    model: StoredValue<String>,
    paid_by: RwSignal<Option<PaidBy>>,
    content: RwSignal<String>,
    status: RwSignal<MessageStatus>,
    error: RwSignal<Option<String>>,
    title: RwSignal<String>,
    usage: RwSignal<ReplyUsage>,
    thinking: RwSignal<String>,
}

impl LiveReply {
    fn new(model: String) -> Self {
        Self {
            id: RwSignal::new(0),
            model: StoredValue::new(model),
            paid_by: RwSignal::new(None),
            content: RwSignal::new(String::new()),
            status: RwSignal::new(MessageStatus::Streaming),
            error: RwSignal::new(None),
            title: RwSignal::new(String::new()),
            usage: RwSignal::new(ReplyUsage::default()),
            thinking: RwSignal::new(String::new()),
        }
    }

    fn to_view(self) -> MessageView {
        let usage = self.usage.get_untracked();
        MessageView {
            id: self.id.get_untracked(),
            role: Speaker::Assistant,
            content: self.content.get_untracked(),
            model: self.model.get_value(),
            status: self.status.get_untracked(),
            error: self.error.get_untracked(),
            paid_by: self.paid_by.get_untracked(),
            input_tokens: usage.input_tokens,
            output_tokens: usage.output_tokens,
            cost_micro_usd: usage.cost_micro_usd,
            cache_read_tokens: usage.cache_read_tokens,
            saved_micro_usd: usage.saved_micro_usd,
            thinking: Some(self.thinking.get_untracked()).filter(|t| !t.is_empty()),
        }
    }

    fn apply(self, event: &ChatEvent) {
        match event {
            ChatEvent::Started {
                assistant_message_id,
                paid_by,
                ..
            } => {
                self.id.set(*assistant_message_id);
                self.paid_by.set(Some(*paid_by));
            }
            ChatEvent::Delta { text } => self.content.update(|c| c.push_str(text)),
            ChatEvent::Thinking { text } => self.thinking.update(|t| t.push_str(text)),
            ChatEvent::Finished {
                status,
                error,
                input_tokens,
                output_tokens,
                cost_micro_usd,
                cache_read_tokens,
                saved_micro_usd,
            } => {
                let usage = ReplyUsage {
                    input_tokens: *input_tokens,
                    output_tokens: *output_tokens,
                    cost_micro_usd: *cost_micro_usd,
                    cache_read_tokens: *cache_read_tokens,
                    saved_micro_usd: *saved_micro_usd,
                };
                self.status.set(*status);
                self.error.set(error.clone());
                self.usage.set(usage);
                self.title.set(usage_title(&self.model.get_value(), usage));
            }
        }
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
    let conversation_id = RwSignal::new(route_id.get_untracked());
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
    // The loaded history, mirrored for event handlers (which must not read the resource).
    let loaded = RwSignal::new(None::<Vec<MessageView>>);
    // Extended thinking is per conversation: the composer starts from what
    // its last turn asked (a new chat starts without).
    let think = RwSignal::new(false);
    let thinking_budget = RwSignal::new(DEFAULT_THINKING_BUDGET);
    Effect::new(move |_| {
        if let Some(Ok(conversation)) = history.get() {
            let budget = conversation.as_ref().and_then(|c| c.thinking_budget);
            think.set(budget.is_some());
            thinking_budget.set(budget.unwrap_or(DEFAULT_THINKING_BUDGET));
            loaded.set(conversation.map(|c| c.messages));
        }
    });
    // Messages shown once this tab has sent something (until the next switch).
    let local = RwSignal::new(None::<Vec<MessageView>>);
    let live = RwSignal::new(None::<LiveReply>);
    let draft = RwSignal::new(String::new());
    let model = RwSignal::new(String::new());
    let sending = RwSignal::new(false);
    let page_error = RwSignal::new(None::<String>);
    let sidebar_version = RwSignal::new(0u32);
    let abort = abort_slot();
    let messages_box = NodeRef::<html::Div>::new();

    let stop = move || {
        if let Some(handle) = abort.get_value() {
            handle.abort();
        }
    };

    // Another conversation was opened (sidebar link, back button).
    Effect::new(move |_| {
        let id = route_id.get();
        if id != conversation_id.get_untracked() {
            stop();
            conversation_id.set(id);
            local.set(None);
            live.set(None);
            page_error.set(None);
        }
    });
    let models = RwSignal::new(Vec::<(String, String)>::new());
    Effect::new(move |_| {
        if let Some(Ok(opts)) = options.get() {
            let current = model.get_untracked();
            if !opts.models.iter().any(|(_, id)| *id == current) {
                model.set(opts.default_model.clone());
            }
            models.set(opts.models);
        }
    });
    // Keep the newest text in view while a reply streams.
    Effect::new(move |_| {
        local.track();
        if let Some(reply) = live.get() {
            reply.content.track();
        }
        if let Some(el) = messages_box.get() {
            el.set_scroll_top(el.scroll_height());
        }
    });

    let shown_messages = move || {
        local
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

    let navigate = leptos_router::hooks::use_navigate();
    let page_owner = Owner::current().expect("a component runs under an owner");
    let send = Callback::new(move |turn: Turn| {
        let text = match &turn {
            Turn::New => draft.get_untracked(),
            Turn::Regenerate => String::new(),
            Turn::Edit { text, .. } => text.clone(),
        }
        .trim()
        .to_owned();
        let regenerate = turn == Turn::Regenerate;
        let turn_is_new = turn == Turn::New;
        if sending.get_untracked() || (!regenerate && text.is_empty()) {
            return;
        }
        let edited = match turn {
            Turn::Edit { id, .. } => Some(id),
            _ => None,
        };
        let chosen_model = model.get_untracked();
        let request = ChatRequest {
            conversation_id: conversation_id.get_untracked(),
            text: text.clone(),
            model: chosen_model.clone(),
            regenerate,
            edit_message_id: edited,
            thinking_budget: think
                .get_untracked()
                .then_some(thinking_budget.get_untracked()),
        };
        let before = local
            .get_untracked()
            .or_else(|| loaded.get_untracked())
            .unwrap_or_default();
        let mut shown = before.clone();
        if let Some(id) = edited {
            // The edited message and what followed it give way to the new turn.
            if let Some(at) = shown.iter().position(|m| m.id == id) {
                shown.truncate(at);
            }
        }
        if regenerate {
            while shown.last().is_some_and(|m| m.role == Speaker::Assistant) {
                shown.pop();
            }
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
        local.set(Some(shown));
        // The composer keeps what it holds unless that is what was sent.
        if turn_is_new {
            draft.set(String::new());
        }
        page_error.set(None);
        sending.set(true);
        // Owned by the page, not by whatever was clicked: an edited message
        // is replaced (its component and owner disposed) as the turn starts.
        let reply = page_owner.with(|| LiveReply::new(chosen_model));
        live.set(Some(reply));
        let navigate = navigate.clone();

        leptos::task::spawn_local(async move {
            let Some(handle) = AbortHandle::new() else {
                page_error.set(Some("This browser cannot stream replies.".into()));
                sending.set(false);
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
                    // The message just sent can be edited once it has an id.
                    if let Some(stored) = *user_message_id {
                        local.update(|messages| {
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
                    if conversation_id.get_untracked() != Some(*id) {
                        conversation_id.set(Some(*id));
                        navigate(
                            &format!("/chat/{id}"),
                            NavigateOptions {
                                replace: true,
                                scroll: false,
                                ..Default::default()
                            },
                        );
                    }
                    sidebar_version.update(|v| *v += 1);
                }
                reply.apply(&event);
            };
            let result = handle.send(&request, &mut on_event).await;
            abort.set_value(None);
            match result {
                Err(message) if !started => {
                    // Nothing was sent: put the text back and say why.
                    local.set(Some(before));
                    live.set(None);
                    // Nothing typed is lost: a refused message (or edit,
                    // if the box is free) goes back into the composer.
                    if turn_is_new || draft.with_untracked(|d| d.trim().is_empty()) {
                        draft.set(text);
                    }
                    page_error.set(Some(message));
                    sending.set(false);
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
            local.update(|messages| messages.get_or_insert_with(Vec::new).push(reply.to_view()));
            live.set(None);
            sending.set(false);
        });
    });

    let on_edit = Callback::new(move |(id, text): (i64, String)| send.run(Turn::Edit { id, text }));
    let reload_conversation = Callback::new(move |()| history.refetch());
    let can_edit = Signal::derive(move || !sending.get() && live.get().is_none());

    let new_chat = Callback::new(move |()| {
        stop();
        local.set(None);
        live.set(None);
        page_error.set(None);
        conversation_id.set(None);
        leptos_router::hooks::use_navigate()("/chat", NavigateOptions::default());
    });
    let on_deleted = Callback::new(move |id: i64| {
        if conversation_id.get_untracked() == Some(id) {
            new_chat.run(());
        }
    });

    view! {
        <div class="chat-layout">
            <Sidebar version=sidebar_version current=conversation_id on_new_chat=new_chat on_deleted />
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
                            if messages.is_empty() && live.get().is_none() {
                                return view! {
                                    <div class="empty-state">
                                        <h1>"What can I help with?"</h1>
                                        <p class="muted">"Ask anything. Replies stream in as Claude writes them."</p>
                                    </div>
                                }
                                .into_any();
                            }
                            let can_regenerate = !sending.get()
                                && live.get().is_none()
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
                    {move || live.get().map(|reply| view! {
                        <AssistantMessage
                            content=reply.content
                            thinking=reply.thinking
                            status=reply.status
                            error=reply.error
                            paid_by=reply.paid_by.get()
                            title=reply.title
                        />
                    })}
                </div>
                {move || page_error.get().map(|message| view! { <p class="alert alert-error" role="alert">{message}</p> })}
                <Composer
                    draft
                    model
                    models
                    sending
                    think
                    thinking_budget
                    on_send=Callback::new(move |()| send.run(Turn::New))
                    on_stop=Callback::new(move |()| stop())
                />
            </section>
        </div>
    }
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
