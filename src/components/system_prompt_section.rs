//! "Default system prompt" on the settings page: sent by every
//! conversation that has none of its own.

use leptos::prelude::*;

use super::alert::{action_error, ErrorAlert};
use crate::{
    api::account::{my_system_prompt, SaveSystemPrompt},
    model::chat::MAX_SYSTEM_PROMPT_CHARS,
};

#[component]
pub fn SystemPromptSection() -> impl IntoView {
    let save = ServerAction::<SaveSystemPrompt>::new();
    let current = Resource::new(move || save.version().get(), |_| my_system_prompt());
    let saved =
        move || matches!(save.value().get(), Some(Ok(()))).then_some("Saved. New turns send it.");
    view! {
        <section class="card" aria-labelledby="system-prompt-heading">
            <h2 id="system-prompt-heading">"System prompt"</h2>
            <Transition fallback=|| view! { <p class="muted" aria-busy="true">"Loading…"</p> }>
                {move || current.get().map(|result| {
                    let value = result.ok().flatten().unwrap_or_default();
                    view! {
                        <ActionForm action=save attr:class="stack">
                            <label for="system-prompt">"Default system prompt"</label>
                            <textarea id="system-prompt" name="system_prompt" rows="5" maxlength=MAX_SYSTEM_PROMPT_CHARS.to_string()>{value}</textarea>
                            <p class="hint">{format!(
                                "Sent at the start of every conversation that has none of its own (set one at the top of a conversation). Up to {MAX_SYSTEM_PROMPT_CHARS} characters; empty for none."
                            )}</p>
                            <ErrorAlert message=action_error(save) />
                            <p class="notice" role="status">{saved}</p>
                            <button type="submit" class="button" disabled=save.pending()>"Save system prompt"</button>
                        </ActionForm>
                    }
                })}
            </Transition>
        </section>
    }
}
