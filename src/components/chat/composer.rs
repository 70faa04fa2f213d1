//! The message box: Enter sends, Shift+Enter adds a line; model picker; Send/Stop.

use leptos::{ev, html, prelude::*};

#[component]
pub fn Composer(
    draft: RwSignal<String>,
    model: RwSignal<String>,
    #[prop(into)] models: Signal<Vec<(String, String)>>,
    #[prop(into)] sending: Signal<bool>,
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
