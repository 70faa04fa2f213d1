//! The message box: Enter sends, Shift+Enter adds a line; model picker;
//! extended thinking and its budget; Send/Stop.

use leptos::{ev, html, prelude::*};

use crate::model::chat::THINKING_BUDGETS;

#[component]
pub fn Composer(
    draft: RwSignal<String>,
    model: RwSignal<String>,
    #[prop(into)] models: Signal<Vec<(String, String)>>,
    #[prop(into)] sending: Signal<bool>,
    /// Whether the next turns think first, and with how many tokens.
    think: RwSignal<bool>,
    thinking_budget: RwSignal<i64>,
    on_send: Callback<()>,
    on_stop: Callback<()>,
) -> impl IntoView {
    let textarea = NodeRef::<html::Textarea>::new();
    let on_keydown = move |event: ev::KeyboardEvent| {
        if event.key() == "Enter" && !event.shift_key() && !event.is_composing() {
            event.prevent_default();
            if !sending.get_untracked() {
                on_send.run(());
            }
        }
    };
    // Back in the box once a reply is done, ready for the next message.
    Effect::new(move |was_sending: Option<bool>| {
        let now = sending.get();
        if was_sending == Some(true) && !now {
            if let Some(el) = textarea.get() {
                let _ = el.focus();
            }
        }
        now
    });
    view! {
        <form
            class="composer"
            on:submit=move |event: ev::SubmitEvent| {
                event.prevent_default();
                on_send.run(());
            }
        >
            <label for="message" class="visually-hidden">"Message"</label>
            <textarea
                id="message"
                name="message"
                rows="3"
                placeholder="Message Claude…  (Enter to send, Shift+Enter for a new line)"
                node_ref=textarea
                prop:value=move || draft.get()
                on:input=move |event| draft.set(event_target_value(&event))
                on:keydown=on_keydown
                disabled=move || sending.get()
            ></textarea>
            <div class="composer-bar">
                <label class="model-picker">
                    <span>"Model"</span>
                    <select
                        name="model"
                        on:change=move |event| model.set(event_target_value(&event))
                        prop:value=move || model.get()
                        disabled=move || sending.get()
                    >
                        {move || {
                            models
                                .get()
                                .into_iter()
                                .map(|(label, id)| {
                                    let selected = id == model.get_untracked();
                                    view! { <option value=id.clone() selected=selected>{label}</option> }
                                })
                                .collect_view()
                        }}
                    </select>
                </label>
                <label class="think-toggle">
                    <input
                        type="checkbox"
                        name="think"
                        prop:checked=move || think.get()
                        on:change=move |event| think.set(event_target_checked(&event))
                        disabled=move || sending.get()
                    />
                    <span>"Think first"</span>
                </label>
                <Show when=move || think.get()>
                    <label class="model-picker">
                        <span>"Thinking budget"</span>
                        <select
                            name="thinking_budget"
                            on:change=move |event| {
                                if let Ok(budget) = event_target_value(&event).parse() {
                                    thinking_budget.set(budget);
                                }
                            }
                            prop:value=move || thinking_budget.get().to_string()
                            disabled=move || sending.get()
                        >
                            {THINKING_BUDGETS
                                .into_iter()
                                .map(|(budget, label)| view! {
                                    <option value=budget.to_string() selected=move || thinking_budget.get() == budget>{label}</option>
                                })
                                .collect_view()}
                        </select>
                    </label>
                </Show>
                <Show
                    when=move || sending.get()
                    fallback=move || {
                        view! {
                            <button type="submit" class="button primary" disabled=move || draft.with(|d| d.trim().is_empty())>
                                "Send"
                            </button>
                        }
                    }
                >
                    <button type="button" class="button" on:click=move |_| on_stop.run(())>
                        "Stop"
                    </button>
                </Show>
            </div>
        </form>
    }
}
