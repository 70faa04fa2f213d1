//! The system prompt at the top of a conversation: the one its turns send
//! (its own, or the default from Settings), and a form to give it its own.

use leptos::prelude::*;

use crate::{api::chat::set_conversation_system_prompt, model::chat::MAX_SYSTEM_PROMPT_CHARS};

#[component]
pub fn SystemPromptBox(
    conversation_id: i64,
    prompt: Option<String>,
    /// Whether `prompt` is the conversation's own (else the default).
    own: bool,
    /// Runs once a change is saved (the page reloads the conversation).
    on_saved: Callback<()>,
) -> impl IntoView {
    let editing = RwSignal::new(false);
    let saving = RwSignal::new(false);
    let error = RwSignal::new(None::<String>);
    let text = RwSignal::new(prompt.clone().unwrap_or_default());
    let save = move |value: String| {
        saving.set(true);
        error.set(None);
        leptos::task::spawn_local(async move {
            match set_conversation_system_prompt(conversation_id, value).await {
                Ok(()) => {
                    editing.set(false);
                    on_saved.run(());
                }
                Err(err) => error.set(Some(err.to_string())),
            }
            saving.set(false);
        });
    };
    let origin = if own {
        "this conversation's own"
    } else {
        "the default from Settings"
    };
    let shown = prompt.clone();
    view! {
        <details class="system-prompt" data-own=own.to_string()>
            <summary>
                {match &prompt {
                    Some(_) => format!("System prompt ({origin})"),
                    None => "No system prompt".to_owned(),
                }}
            </summary>
            <Show
                when=move || editing.get()
                fallback=move || view! {
                    <p class="system-prompt-text">
                        {shown.clone().unwrap_or_else(|| "None: set a default in Settings, or one for this conversation here.".to_owned())}
                    </p>
                    <button type="button" class="button small-plain" on:click=move |_| editing.set(true)>
                        "Edit system prompt"
                    </button>
                }
            >
                <textarea
                    aria-label="System prompt for this conversation"
                    rows="4"
                    maxlength=MAX_SYSTEM_PROMPT_CHARS.to_string()
                    prop:value=move || text.get()
                    on:input=move |ev| text.set(event_target_value(&ev))
                ></textarea>
                {move || error.get().map(|message| view! { <p class="alert alert-error" role="alert">{message}</p> })}
                <div class="msg-edit-actions">
                    <button type="button" class="button small" disabled=move || saving.get() on:click=move |_| save(text.get_untracked())>
                        "Save for this conversation"
                    </button>
                    <Show when=move || own>
                        <button type="button" class="button small-plain" disabled=move || saving.get() on:click=move |_| save(String::new())>
                            "Use the default"
                        </button>
                    </Show>
                    <button type="button" class="button small-plain" on:click=move |_| editing.set(false)>"Cancel"</button>
                </div>
            </Show>
        </details>
    }
}
