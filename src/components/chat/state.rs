//! What the chat page knows, in signals its parts share: the conversation
//! shown, the messages sent from this tab, the reply streaming, the
//! composer's settings.

use leptos::prelude::*;

use super::live_reply::LiveReply;
use crate::model::chat::{MessageView, DEFAULT_THINKING_BUDGET};

/// What a send does.
#[derive(Clone, PartialEq, Eq)]
pub enum Turn {
    /// Sends the composer's text.
    New,
    /// Replaces the last reply.
    Regenerate,
    /// Replaces an earlier message of the user's, and what followed it.
    Edit { id: i64, text: String },
}

#[derive(Clone, Copy)]
pub struct ChatState {
    /// The conversation shown (`None`: a new chat, until its first turn).
    pub conversation_id: RwSignal<Option<i64>>,
    /// The loaded history, mirrored for event handlers (which must not
    /// read the resource).
    pub loaded: RwSignal<Option<Vec<MessageView>>>,
    /// Messages shown once this tab has sent something (until the next
    /// switch).
    pub local: RwSignal<Option<Vec<MessageView>>>,
    pub live: RwSignal<Option<LiveReply>>,
    pub draft: RwSignal<String>,
    pub model: RwSignal<String>,
    /// Extended thinking, per conversation: the composer starts from what
    /// its last turn asked (a new chat starts without).
    pub think: RwSignal<bool>,
    pub thinking_budget: RwSignal<i64>,
    pub sending: RwSignal<bool>,
    pub page_error: RwSignal<Option<String>>,
    /// Bumped when the conversation list should be read again.
    pub sidebar_version: RwSignal<u32>,
    /// A message whose send was lost before its reply began, and the key
    /// it went with: sent again as it was, it goes with the same key (the
    /// server may have stored it, see `ChatRequest::turn_key`).
    pub lost_try: StoredValue<Option<(String, String)>>,
}

impl ChatState {
    pub fn new(conversation_id: Option<i64>) -> Self {
        Self {
            conversation_id: RwSignal::new(conversation_id),
            loaded: RwSignal::new(None),
            local: RwSignal::new(None),
            live: RwSignal::new(None),
            draft: RwSignal::new(String::new()),
            model: RwSignal::new(String::new()),
            think: RwSignal::new(false),
            thinking_budget: RwSignal::new(DEFAULT_THINKING_BUDGET),
            sending: RwSignal::new(false),
            page_error: RwSignal::new(None),
            sidebar_version: RwSignal::new(0),
            lost_try: StoredValue::new(None),
        }
    }

    /// Forgets what this tab showed of the last conversation.
    pub fn clear(&self) {
        self.local.set(None);
        self.live.set(None);
        self.page_error.set(None);
        self.lost_try.set_value(None);
    }

    /// The key to send `text` with: the lost try's when it is that text
    /// again, else a new one.
    pub fn turn_key_for(&self, text: &str) -> String {
        self.lost_try
            .with_value(|lost| {
                lost.as_ref()
                    .filter(|(lost_text, _)| lost_text == text)
                    .map(|(_, key)| key.clone())
            })
            .unwrap_or_else(new_turn_key)
    }
}

/// A fresh turn key: random (the server looks it up among this user's
/// conversations only). Sends happen in the browser alone.
fn new_turn_key() -> String {
    #[cfg(feature = "hydrate")]
    {
        let part = || (js_sys::Math::random() * 4_294_967_296.0) as u32;
        format!("{:08x}{:08x}{:08x}", part(), part(), part())
    }
    #[cfg(not(feature = "hydrate"))]
    String::from("server-rendered")
}
