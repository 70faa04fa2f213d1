//! One message in the conversation.

use leptos::prelude::*;

use super::markdown_body::MarkdownHtml;
use crate::model::{
    chat::{MessageView, ReplyUsage},
    domain::{MessageStatus, PaidBy, Speaker},
    models,
};

/// "$0.0012" from micro-USD ("-$0.0012" below zero: a saving that was a
/// cost, when a turn only wrote to the prompt cache), rounded half away
/// from zero to a hundredth of a cent. In integers, so exact: a float
/// shows 150 micro-USD (0.00015, just under in binary) as $0.0001.
pub fn format_usd(micro: i64) -> String {
    let sign = if micro < 0 { "-" } else { "" };
    let ten_thousandths = (micro.unsigned_abs() + 50) / 100;
    format!(
        "{sign}${}.{:04}",
        ten_thousandths / 10_000,
        ten_thousandths % 10_000
    )
}

/// Hover text with the tokens and cost of a reply, and what prompt
/// caching saved when the reply read from the cache.
pub fn usage_title(model: &str, usage: ReplyUsage) -> String {
    let mut title = format!(
        "{} · {} input + {} output tokens · {}",
        models::label(model),
        usage.input_tokens,
        usage.output_tokens,
        format_usd(usage.cost_micro_usd)
    );
    // `input_tokens` is what was billed as plain input; the prompt's cached
    // part is read (cheap) or written (dearer now, cheap on the next turn).
    if usage.cache_read_tokens > 0 && usage.saved_micro_usd >= 0 {
        title.push_str(&format!(
            " · cached: {} tokens, saved {}",
            usage.cache_read_tokens,
            format_usd(usage.saved_micro_usd)
        ));
    } else if usage.saved_micro_usd < 0 {
        title.push_str(&format!(
            " · prompt cached for the next turn: {} more now",
            format_usd(-usage.saved_micro_usd)
        ));
    }
    title
}

/// The first `chars` characters of `text` on one line, with an ellipsis
/// when cut.
fn snippet(text: &str, chars: usize) -> String {
    let line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    match line.char_indices().nth(chars) {
        Some((cut, _)) => format!("{}…", line[..cut].trim_end()),
        None => line,
    }
}

/// A message of the user's. With `on_edit` (its id, and what resends it),
/// it offers "Edit" while `can_edit` holds: the text
/// opens in a box, and "Resend" replaces the message and everything after
/// it with a new turn.
#[component]
pub fn UserMessage(
    content: String,
    on_edit: Option<(i64, Callback<(i64, String)>)>,
    #[prop(into)] can_edit: Signal<bool>,
) -> impl IntoView {
    let editing = RwSignal::new(false);
    let text = RwSignal::new(content.clone());
    let edit_box = NodeRef::<leptos::html::Textarea>::new();
    // Focus follows the box open: the Edit button it replaced is gone.
    Effect::new(move |_| {
        if editing.get() {
            if let Some(el) = edit_box.get() {
                let _ = el.focus();
            }
        }
    });
    // Each message's button names the message it edits, for a screen
    // reader listing the page's buttons (the visible word comes first).
    let edit_label = format!("Edit “{}”", snippet(&content, 40));
    let original = StoredValue::new(content.clone());
    let cancel = move || {
        text.set(original.get_value());
        editing.set(false);
    };
    let edit_form = move |(id, on_edit): (i64, Callback<(i64, String)>)| {
        let resend = move || {
            let edited = text.get_untracked();
            if edited.trim().is_empty() {
                return;
            }
            editing.set(false);
            on_edit.run((id, edited));
        };
        view! {
            <div class="msg-edit">
                <textarea
                    aria-label="Edit message"
                    node_ref=edit_box
                    rows="3"
                    prop:value=move || text.get()
                    on:input=move |ev| text.set(event_target_value(&ev))
                    on:keydown=move |ev| {
                        if ev.is_composing() {
                            return;
                        }
                        if ev.key() == "Escape" {
                            cancel();
                        } else if ev.key() == "Enter" && !ev.shift_key() {
                            ev.prevent_default();
                            resend();
                        }
                    }
                ></textarea>
                <div class="msg-edit-actions">
                    <button type="button" class="button small" on:click=move |_| resend() disabled=move || !can_edit.get()>"Resend"</button>
                    <button type="button" class="button small-plain" on:click=move |_| cancel()>"Cancel"</button>
                </div>
            </div>
        }
    };
    view! {
        <article class="msg msg-user" aria-label="You">
            {move || {
                if editing.get() {
                    on_edit.map(edit_form).into_any()
                } else {
                    view! { <div class="msg-body user-text">{original.get_value()}</div> }.into_any()
                }
            }}
            <Show when=move || on_edit.is_some() && can_edit.get() && !editing.get()>
                <button type="button" class="button small-plain msg-edit-button" title="Edit this message and send it again" aria-label=edit_label.clone() on:click=move |_| editing.set(true)>
                    "Edit"
                </button>
            </Show>
        </article>
    }
}

/// An assistant reply. `content` and `status` are signals so a streaming reply
/// updates in place.
#[component]
pub fn AssistantMessage(
    #[prop(into)] content: Signal<String>,
    /// Extended thinking, shown collapsed above the reply.
    #[prop(into)]
    thinking: Signal<String>,
    #[prop(into)] status: Signal<MessageStatus>,
    #[prop(into)] error: Signal<Option<String>>,
    paid_by: Option<PaidBy>,
    #[prop(into)] title: Signal<String>,
) -> impl IntoView {
    let paid_by_attr = paid_by.map_or("", PaidBy::as_str);
    let badge = paid_by.map(|paid_by| match paid_by {
        PaidBy::OwnKey => ("badge badge-user", paid_by.label()),
        PaidBy::Platform => ("badge badge-free", paid_by.label()),
    });
    let streaming = move || status.get() == MessageStatus::Streaming;
    view! {
        <article class="msg msg-assistant" aria-label="Claude" data-paid-by=paid_by_attr data-status=move || status.get().as_str()>
            <div class="msg-meta">
                <span class="msg-author">"Claude"</span>
                {badge.map(|(class, text)| view! { <span class=class title=move || title.get()>{text}</span> })}
                <Show when=move || status.get() == MessageStatus::Stopped>
                    <span class="badge badge-muted">"stopped"</span>
                </Show>
            </div>
            <Show when=move || thinking.with(|t| !t.is_empty())>
                <details class="thinking">
                    <summary>{move || if streaming() && content.with(String::is_empty) { "Thinking…" } else { "Thinking" }}</summary>
                    <p class="thinking-text">{move || thinking.get()}</p>
                </details>
            </Show>
            <div class="msg-body markdown" inner_html=MarkdownHtml(content)></div>
            <Show when=move || streaming() && content.with(String::is_empty)>
                <p class="typing">"Claude is replying…"</p>
            </Show>
            {move || error.get().map(|message| view! { <p class="alert alert-error" role="alert">{message}</p> })}
        </article>
    }
}

/// A stored message, rendered by role; the user's may be edited.
#[component]
pub fn StoredMessage(
    message: MessageView,
    on_edit: Callback<(i64, String)>,
    #[prop(into)] can_edit: Signal<bool>,
) -> impl IntoView {
    if message.role == Speaker::User {
        // One shown before the server gave it an id cannot be edited yet.
        let on_edit = (message.id > 0).then_some((message.id, on_edit));
        return view! { <UserMessage content=message.content on_edit can_edit /> }.into_any();
    }
    let title = usage_title(&message.model, ReplyUsage::of(&message));
    view! {
        <AssistantMessage
            content=message.content
            thinking=message.thinking.unwrap_or_default()
            status=message.status
            error=message.error
            paid_by=message.paid_by
            title=title
        />
    }
    .into_any()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_edit_button_names_the_start_of_its_message() {
        assert_eq!(snippet("short\nmessage", 40), "short message");
        assert_eq!(snippet("héllo wörld again", 11), "héllo wörld…");
        assert_eq!(snippet("twelve chars", 12), "twelve chars");
    }

    #[test]
    fn the_hover_says_what_caching_saved_or_cost() {
        let read = ReplyUsage {
            input_tokens: 12,
            output_tokens: 30,
            cost_micro_usd: 1_200,
            cache_read_tokens: 5_000,
            saved_micro_usd: 4_500,
        };
        assert_eq!(
            usage_title("claude-haiku-4-5", read),
            "Claude Haiku 4.5 · 12 input + 30 output tokens · $0.0012 · cached: 5000 tokens, saved $0.0045"
        );
        let written = ReplyUsage {
            saved_micro_usd: -1_250,
            cache_read_tokens: 0,
            ..read
        };
        assert!(usage_title("claude-haiku-4-5", written)
            .ends_with(" · prompt cached for the next turn: $0.0013 more now"));
        let plain = ReplyUsage::default();
        assert_eq!(
            usage_title("claude-haiku-4-5", plain),
            "Claude Haiku 4.5 · 0 input + 0 output tokens · $0.0000"
        );
        assert_eq!(format_usd(-1_250), "-$0.0013");
    }

    #[test]
    fn dollars_are_rounded_to_a_hundredth_of_a_cent() {
        assert_eq!(format_usd(0), "$0.0000");
        assert_eq!(format_usd(49), "$0.0000");
        assert_eq!(format_usd(50), "$0.0001");
        assert_eq!(format_usd(150), "$0.0002");
        assert_eq!(format_usd(1_234_567), "$1.2346");
        assert_eq!(format_usd(12_000_000), "$12.0000");
        assert_eq!(format_usd(-999_950), "-$1.0000");
        assert_eq!(format_usd(i64::MIN), "-$9223372036854.7758");
    }
}
