//! Turning stored messages into the `messages` array Anthropic expects, and
//! into what the chat page shows.

use serde_json::{json, Value};

use crate::{
    model::{
        caching::PromptCaching,
        chat::{ConversationView, MessageView},
        domain::{MessageStatus, Speaker},
    },
    server::db::conversations::{ConversationRow, MessageRow},
};

/// A title from the first message: its first line, at most 60 characters.
pub fn title_from(text: &str) -> String {
    let line = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("New chat");
    let mut title: String = line.chars().take(60).collect();
    if line.chars().count() > 60 {
        title.push('…');
    }
    title
}

/// The conversation so far as Anthropic `messages`. Failed replies and empty
/// partial replies are left out; the consecutive user turns this can leave
/// are fine (the API combines them into one turn).
pub fn upstream_messages(rows: &[MessageRow]) -> Vec<Value> {
    rows.iter()
        .filter(|row| match row.role {
            Speaker::User => true,
            Speaker::Assistant => {
                matches!(row.status, MessageStatus::Complete | MessageStatus::Stopped)
                    && !row.content.trim().is_empty()
            }
        })
        .skip_while(|row| row.role != Speaker::User)
        .map(|row| json!({ "role": row.role, "content": row.content }))
        .collect()
}

/// Marks the newest user message as a prompt-cache breakpoint, so this
/// turn writes the conversation so far to Anthropic's cache and the next
/// turn reads it back (at a tenth of the input price) instead of paying
/// for it again. One breakpoint (of the four allowed): Anthropic also looks
/// for cached prefixes at the earlier block boundaries, which finds the
/// previous turn's. Left out below the model's minimum cacheable length,
/// where it would cache nothing; the length is estimated from the text at
/// four bytes a token. The plan's caching setting gives the lifetime (or
/// turns caching off).
pub fn mark_cache_breakpoint(
    messages: &mut [Value],
    system: Option<&str>,
    model: &str,
    caching: PromptCaching,
) {
    let Some(cache_control) = caching.cache_control() else {
        return;
    };
    let Some(minimum) = crate::model::models::find(model).map(|m| m.min_cacheable_tokens) else {
        return;
    };
    let bytes: usize = messages
        .iter()
        .filter_map(|message| message["content"].as_str())
        .chain(system)
        .map(str::len)
        .sum();
    if (bytes / 4) < minimum as usize {
        return;
    }
    let Some(last_user) = messages.iter_mut().rev().find(|m| m["role"] == "user") else {
        return;
    };
    let Some(text) = last_user["content"].as_str().map(str::to_owned) else {
        return;
    };
    last_user["content"] = json!([{
        "type": "text",
        "text": text,
        "cache_control": cache_control,
    }]);
}

pub fn message_view(row: &MessageRow) -> MessageView {
    MessageView {
        id: row.id,
        role: row.role,
        content: row.content.clone(),
        model: row.model.clone(),
        // A reply still marked streaming after a restart was cut off.
        status: match row.status {
            MessageStatus::Streaming => MessageStatus::Stopped,
            status => status,
        },
        error: row.error.clone(),
        paid_by: row.paid_by,
        input_tokens: row.input_tokens,
        output_tokens: row.output_tokens,
        cost_micro_usd: row.cost_micro_usd,
        cache_read_tokens: row.cache_read_tokens,
        saved_micro_usd: row.saved_micro_usd,
        thinking: row.thinking.clone(),
    }
}

/// The system prompt a conversation's turns send: its own, else the
/// user's default.
pub fn effective_system_prompt(
    conversation: Option<&ConversationRow>,
    default: Option<String>,
) -> Option<String> {
    conversation
        .and_then(|c| c.system_prompt.clone())
        .or(default)
}

pub fn conversation_view(
    conversation: &ConversationRow,
    rows: &[MessageRow],
    default_system_prompt: Option<String>,
) -> ConversationView {
    ConversationView {
        id: conversation.id,
        title: conversation.title.clone(),
        model: conversation.model.clone(),
        messages: rows.iter().map(message_view).collect(),
        own_system_prompt: conversation.system_prompt.is_some(),
        system_prompt: effective_system_prompt(Some(conversation), default_system_prompt),
        thinking_budget: conversation.thinking_budget,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(role: &str, content: &str, status: &str) -> MessageRow {
        let (role, status) = (role.parse().unwrap(), status.parse().unwrap());
        MessageRow::new(0, role, content.into(), status)
    }

    #[test]
    fn titles_come_from_the_first_line() {
        assert_eq!(title_from("\n  Hello there\nsecond"), "Hello there");
        assert_eq!(title_from(&"x".repeat(70)), format!("{}…", "x".repeat(60)));
        assert_eq!(title_from("   "), "New chat");
    }

    #[test]
    fn the_newest_user_message_is_the_breakpoint_once_the_prompt_is_long_enough() {
        let long = "x".repeat(4 * 4_096);
        let mut short = vec![json!({ "role": "user", "content": "hi" })];
        mark_cache_breakpoint(&mut short, None, "claude-haiku-4-5", FIVE);
        assert_eq!(short[0]["content"], "hi", "below Haiku's 4,096 tokens");
        let mut messages = vec![
            json!({ "role": "user", "content": long }),
            json!({ "role": "assistant", "content": "ok" }),
            json!({ "role": "user", "content": "more" }),
        ];
        mark_cache_breakpoint(&mut messages, None, "claude-haiku-4-5", FIVE);
        assert_eq!(
            messages[0]["content"].as_str().map(str::len),
            Some(long.len())
        );
        assert_eq!(messages[2]["content"][0]["text"], "more");
        assert_eq!(
            messages[2]["content"][0]["cache_control"]["type"],
            "ephemeral"
        );
        let breakpoints = serde_json::to_string(&messages)
            .unwrap()
            .matches("cache_control")
            .count();
        assert_eq!(breakpoints, 1, "one breakpoint, of the four allowed");
        let mut unknown = vec![json!({ "role": "user", "content": long })];
        mark_cache_breakpoint(&mut unknown, None, "some-other-model", FIVE);
        assert!(
            unknown[0]["content"].is_string(),
            "no minimum known, no breakpoint"
        );
    }

    const FIVE: PromptCaching = PromptCaching::FiveMinutes;

    #[test]
    fn the_plan_sets_the_lifetime_or_turns_caching_off() {
        let long = "x".repeat(4 * 4_096);
        let turn = || vec![json!({ "role": "user", "content": long })];
        let mut hour = turn();
        mark_cache_breakpoint(&mut hour, None, "claude-haiku-4-5", PromptCaching::OneHour);
        assert_eq!(hour[0]["content"][0]["cache_control"]["ttl"], "1h");
        let mut off = turn();
        mark_cache_breakpoint(&mut off, None, "claude-haiku-4-5", PromptCaching::Off);
        assert_eq!(off, turn(), "off sends the history as it is");
    }

    #[test]
    fn failed_replies_are_skipped() {
        let rows = [
            row("user", "one", "complete"),
            row("assistant", "", "error"),
            row("user", "two", "complete"),
            row("assistant", "partial", "stopped"),
            row("user", "three", "complete"),
        ];
        let messages = upstream_messages(&rows);
        assert_eq!(
            messages,
            vec![
                json!({ "role": "user", "content": "one" }),
                json!({ "role": "user", "content": "two" }),
                json!({ "role": "assistant", "content": "partial" }),
                json!({ "role": "user", "content": "three" }),
            ]
        );
    }
}
