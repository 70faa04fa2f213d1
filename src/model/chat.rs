//! Types of the chat page and its streaming endpoint (`POST /chat/send`).

use serde::{Deserialize, Serialize};

use super::domain::{MessageStatus, PaidBy, Speaker};

/// One turn sent from the chat page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatRequest {
    /// `None` starts a new conversation.
    pub conversation_id: Option<i64>,
    /// The user's message; ignored when `regenerate` is set.
    #[serde(default)]
    pub text: String,
    pub model: String,
    /// Replace the last reply instead of sending a new message.
    #[serde(default)]
    pub regenerate: bool,
    /// Replace this earlier user message with `text`: the turns after it
    /// are deleted (their ledger rows stay) and a new reply follows.
    #[serde(default)]
    pub edit_message_id: Option<i64>,
    /// Extended thinking, with this many tokens of budget (at least 1,024).
    #[serde(default)]
    pub thinking_budget: Option<i64>,
    /// A random key the page gives the message sent: sent again after the
    /// browser lost the first try, it replaces that try if the server
    /// stored it (`server::chat::turn`, `take_the_place_of_a_lost_try`).
    #[serde(default)]
    pub turn_key: Option<String>,
}

/// Longest turn key the server accepts.
pub const MAX_TURN_KEY_CHARS: usize = 64;

/// Whether `key` is a turn key the server takes: 1 to 64 ASCII letters,
/// digits, `-` or `_`.
pub fn valid_turn_key(key: &str) -> bool {
    !key.is_empty()
        && key.len() <= MAX_TURN_KEY_CHARS
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The smallest thinking budget Anthropic accepts.
pub const MIN_THINKING_BUDGET: i64 = 1_024;

/// The budgets the composer offers, and the one it starts on.
pub const THINKING_BUDGETS: [(i64, &str); 3] = [
    (1_024, "1K tokens"),
    (4_096, "4K tokens"),
    (16_384, "16K tokens"),
];
pub const DEFAULT_THINKING_BUDGET: i64 = 4_096;

/// What a finished reply used, cost, and saved by prompt caching.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplyUsage {
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub cost_micro_usd: i64,
    /// Prompt tokens read from Anthropic's cache, and what that saved.
    pub cache_read_tokens: i64,
    pub saved_micro_usd: i64,
}

impl ReplyUsage {
    pub fn of(message: &MessageView) -> Self {
        Self {
            input_tokens: message.input_tokens,
            output_tokens: message.output_tokens,
            cost_micro_usd: message.cost_micro_usd,
            cache_read_tokens: message.cache_read_tokens,
            saved_micro_usd: message.saved_micro_usd,
        }
    }
}

/// The longest system prompt accepted, in characters.
pub const MAX_SYSTEM_PROMPT_CHARS: usize = 20_000;

/// A system prompt as typed: trimmed, `None` when empty, refused (with a
/// message naming the rule) when too long.
pub fn clean_system_prompt(text: &str) -> Result<Option<String>, String> {
    let text = text.trim();
    if text.chars().count() > MAX_SYSTEM_PROMPT_CHARS {
        return Err(format!(
            "A system prompt can be at most {MAX_SYSTEM_PROMPT_CHARS} characters."
        ));
    }
    Ok((!text.is_empty()).then(|| text.to_owned()))
}

/// Regenerating replaces the last reply: the assistant messages after the
/// last user message go (the stored ones, and the ones the page shows).
pub fn drop_trailing_replies<T>(messages: &mut Vec<T>, speaker: impl Fn(&T) -> Speaker) {
    while messages
        .last()
        .is_some_and(|message| speaker(message) == Speaker::Assistant)
    {
        messages.pop();
    }
}

/// One line of the NDJSON stream answering a `ChatRequest`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ChatEvent {
    Started {
        conversation_id: i64,
        title: String,
        user_message_id: Option<i64>,
        assistant_message_id: i64,
        paid_by: PaidBy,
    },
    Delta {
        text: String,
    },
    /// A piece of the reply's extended thinking.
    Thinking {
        text: String,
    },
    /// The reply ended: complete, stopped or with an error (its message).
    Finished {
        status: MessageStatus,
        error: Option<String>,
        input_tokens: i64,
        output_tokens: i64,
        cost_micro_usd: i64,
        /// Prompt tokens read from Anthropic's cache, and what that saved.
        cache_read_tokens: i64,
        saved_micro_usd: i64,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConversationSummary {
    pub id: i64,
    pub title: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageView {
    pub id: i64,
    pub role: Speaker,
    pub content: String,
    pub model: String,
    pub status: MessageStatus,
    pub error: Option<String>,
    /// Who paid, for assistant messages.
    pub paid_by: Option<PaidBy>,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub cost_micro_usd: i64,
    /// Prompt tokens read from Anthropic's cache, and what that saved.
    pub cache_read_tokens: i64,
    pub saved_micro_usd: i64,
    /// The reply's extended thinking, if it thought first.
    pub thinking: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConversationView {
    pub id: i64,
    pub title: String,
    pub model: String,
    pub messages: Vec<MessageView>,
    /// The system prompt its turns send, and whether it is the
    /// conversation's own (else the user's default from Settings).
    pub system_prompt: Option<String>,
    pub own_system_prompt: bool,
    /// Extended thinking as the conversation's last turn asked: its
    /// budget, `None` for off. The composer starts from it.
    pub thinking_budget: Option<i64>,
}

/// What the chat page needs to offer: models this user may pick, and whether
/// replies come from the bundled demo upstream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct ChatOptions {
    pub models: Vec<(String, String)>,
    pub default_model: String,
    pub has_own_key: bool,
}
