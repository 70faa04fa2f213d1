//! "Daily caps on your key" on the settings page: how many tokens and how
//! many dollars the user's own key may use per UTC day, with today's use.

use leptos::prelude::*;

use super::{
    alert::{action_error, ErrorAlert},
    usage_bar::UsageBar,
};
use crate::{
    api::keys::{get_caps, SaveCaps},
    model::caps::{format_usd_amount, OwnKeyCapsStatus},
};

#[component]
pub fn KeyCapsSection() -> impl IntoView {
    let save = ServerAction::<SaveCaps>::new();
    // Reloaded after a successful save only: after a refused one the form
    // keeps what the user typed, next to the error.
    let saves = RwSignal::new(0u32);
    let saved = save.value();
    Effect::new(move |_| {
        if matches!(saved.get(), Some(Ok(_))) {
            saves.update(|n| *n += 1);
        }
    });
    let status = Resource::new(move || saves.get(), |_| get_caps());
    let pending = save.pending();
    let notice = move || {
        matches!(saved.get(), Some(Ok(_)))
            .then_some("Caps saved. They apply from your next call on your own key.")
    };

    view! {
        <section class="card" aria-labelledby="caps-heading">
            <h2 id="caps-heading">"Daily caps on your key"</h2>
            <p class="muted">
                "Limit what your own Anthropic key may use per day. A call that could go over a cap "
                "is refused before it reaches Anthropic. Leave a field empty for no cap."
            </p>
            // One boundary reads the resource: Leptos 0.8's streaming SSR can
            // stall when one resource is read under two Suspense boundaries.
            <Transition fallback=|| view! { <p class="muted" aria-busy="true">"Loading your caps…"</p> }>
                {move || status.get().map(|result| match result {
                    Ok(status) => view! {
                        <CapsView status=status.clone() />
                        <p class="notice" role="status">{notice}</p>
                        <CapsForm status save pending />
                    }
                    .into_any(),
                    Err(err) => view! { <p class="alert alert-error" role="alert">{err.to_string()}</p> }.into_any(),
                })}
            </Transition>
        </section>
    }
}

#[component]
fn CapsView(status: OwnKeyCapsStatus) -> impl IntoView {
    let note = if status.has_own_key {
        format!(
            "Today on your key. Caps reset at 00:00 UTC, in {}.",
            status.resets_in
        )
    } else {
        "These caps apply once you add your own key above.".to_owned()
    };
    view! {
        <p class="hint">{note}</p>
        <UsageBar label="Tokens today on your key" used=status.tokens_today limit=status.caps.tokens_per_day />
        <UsageBar
            label="Spent today on your key"
            used=status.micro_usd_today
            limit=status.caps.micro_usd_per_day
            format=format_usd_amount
        />
    }
}

#[component]
fn CapsForm(
    status: OwnKeyCapsStatus,
    save: ServerAction<SaveCaps>,
    pending: Memo<bool>,
) -> impl IntoView {
    let tokens = status
        .caps
        .tokens_per_day
        .map(|n| n.to_string())
        .unwrap_or_default();
    let usd = status
        .caps
        .micro_usd_per_day
        .map(|m| format_usd_amount(m).trim_start_matches('$').to_owned())
        .unwrap_or_default();
    view! {
        <ActionForm action=save attr:class="stack caps-form">
            <label for="cap-tokens">"Daily token cap"</label>
            <input
                id="cap-tokens"
                name="tokens_per_day"
                type="text"
                inputmode="numeric"
                autocomplete="off"
                placeholder="no cap, e.g. 500000"
                value=tokens
                aria-describedby="cap-tokens-hint"
            />
            <p id="cap-tokens-hint" class="hint">"Input and output tokens together, all models."</p>
            <label for="cap-usd">"Daily spending cap (USD)"</label>
            <input
                id="cap-usd"
                name="usd_per_day"
                type="text"
                inputmode="decimal"
                autocomplete="off"
                placeholder="no cap, e.g. 5.00"
                value=usd
                aria-describedby="cap-usd-hint"
            />
            <p id="cap-usd-hint" class="hint">"At Anthropic's list prices, as your usage list shows them."</p>
            <ErrorAlert message=action_error(save) />
            <button type="submit" class="button" disabled=pending aria-busy=move || pending.get().to_string()>
                "Save caps"
            </button>
        </ActionForm>
    }
}
