//! "API key" on the settings page: paste, see, replace and remove your own key.

use leptos::{html, prelude::*};

use super::alert::{action_error, ErrorAlert};
use crate::{
    api::keys::{get_key_status, RemoveKey, SaveKey, SetFallback},
    model::{KeyHealth, KeyStatus},
};

#[component]
pub fn ApiKeySection() -> impl IntoView {
    let save = ServerAction::<SaveKey>::new();
    let remove = ServerAction::<RemoveKey>::new();
    let fallback = ServerAction::<SetFallback>::new();
    let status = Resource::new(
        move || {
            (
                save.version().get(),
                remove.version().get(),
                fallback.version().get(),
            )
        },
        |_| get_key_status(),
    );
    let input = NodeRef::<html::Input>::new();
    let saved = save.value();
    // The key leaves the page as soon as the server has it.
    Effect::new(move |_| {
        if matches!(saved.get(), Some(Ok(_))) {
            if let Some(input) = input.get() {
                input.set_value("");
            }
        }
    });
    let saving = save.pending();
    let removing = remove.pending();
    let notice = move || {
        if matches!(saved.get(), Some(Ok(_))) {
            Some("Key saved. Your chats now run on your own key.")
        } else if matches!(remove.value().get(), Some(Ok(()))) {
            Some("Key removed. Your chats use this server's free tier again.")
        } else {
            None
        }
    };

    view! {
        <section class="card" aria-labelledby="api-key-heading">
            <h2 id="api-key-heading">"API key"</h2>
            <p class="muted">
                "Go premium with your own Anthropic API key: your chats are sent on your key, you pay "
                "Anthropic directly, and this server's free-tier limits no longer apply to you. "
                "The key is checked with Anthropic, stored encrypted, and never sent back to your browser."
            </p>
            <Transition fallback=|| view! { <p class="muted" aria-busy="true">"Loading your key status…"</p> }>
                {move || status.get().map(|result| match result {
                    Ok(Some(key)) => view! {
                        <FallbackChoice on=key.fallback_to_free action=fallback />
                        <KeyStatusCard key />
                        <ActionForm action=remove attr:class="inline-form">
                            <button type="submit" class="button danger" disabled=removing>
                                "Remove key"
                            </button>
                        </ActionForm>
                    }
                    .into_any(),
                    Ok(None) => view! { <p class="key-status none">"No key saved. You chat on this server's free tier."</p> }.into_any(),
                    Err(err) => view! { <p class="alert alert-error" role="alert">{err.to_string()}</p> }.into_any(),
                })}
            </Transition>
            <p class="notice" role="status">{notice}</p>
            <ActionForm action=save attr:class="stack">
                <label for="api-key">"Anthropic API key"</label>
                <input
                    id="api-key"
                    name="api_key"
                    type="password"
                    autocomplete="off"
                    spellcheck="false"
                    placeholder="sk-ant-api03-…"
                    required
                    node_ref=input
                    aria-describedby="api-key-hint"
                />
                <p id="api-key-hint" class="hint">
                    "Create one in the Anthropic Console under API keys. Saving a new key replaces the old one."
                </p>
                <ErrorAlert message=action_error(save) />
                <Show when=move || saving.get()>
                    <p class="muted" aria-live="polite">"Checking the key with Anthropic…"</p>
                </Show>
                <button type="submit" class="button primary" disabled=saving aria-busy=move || saving.get().to_string()>
                    "Save key"
                </button>
            </ActionForm>
            <ErrorAlert message=action_error(remove) />
            <ErrorAlert message=action_error(fallback) />
        </section>
    }
}

#[component]
fn KeyStatusCard(key: KeyStatus) -> impl IntoView {
    let (health_class, health_text) = match &key.health {
        KeyHealth::Ok => ("ok", "OK".to_owned()),
        KeyHealth::Rejected { on } => (
            "bad",
            format!("Rejected by Anthropic on {on}. Paste a new key."),
        ),
        KeyHealth::Unreadable => (
            "bad",
            "This server can no longer read it. Please re-enter your key.".to_owned(),
        ),
    };
    view! {
        <dl class="key-status">
            <dt>"Saved key"</dt>
            <dd><code data-testid="masked-key">{key.masked}</code></dd>
            <dt>"Added"</dt>
            <dd>{key.added_on}</dd>
            <dt>"Last used"</dt>
            <dd>{key.last_used.unwrap_or_else(|| "never".to_owned())}</dd>
            <dt>"Status"</dt>
            <dd class=format!("health {health_class}")>{health_text}</dd>
        </dl>
    }
}

/// "Use the free tier when my key fails": off unless the user turns it on.
#[component]
fn FallbackChoice(on: bool, action: ServerAction<SetFallback>) -> impl IntoView {
    let (state, button) = if on {
        (
            "If Anthropic rejects your key, your chats continue on this server's free tier, under its limits, and those replies are marked \"free tier\".",
            "Stop using the free tier when my key fails",
        )
    } else {
        (
            "If Anthropic rejects your key, your chats stop with a message until you update it; nothing is sent on this server's key.",
            "Use the free tier when my key fails",
        )
    };
    view! {
        <div class="fallback" data-fallback=on.to_string()>
            <p class="hint">{state}</p>
            <ActionForm action attr:class="inline-form">
                <input type="hidden" name="on" value=(!on).to_string() />
                <button type="submit" class="button small-plain">{button}</button>
            </ActionForm>
        </div>
    }
}
