//! Turning stored messages into the `messages` array Anthropic expects, and
//! into what the chat page shows.

use serde_json::{json, Value};

use crate::{
    model::chat::{ConversationView, MessageView},
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
        .filter(|row| match row.role.as_str() {
            "user" => true,
            _ => {
                matches!(row.status.as_str(), "complete" | "stopped")
                    && !row.content.trim().is_empty()
            }
        })
        .skip_while(|row| row.role != "user")
        .map(|row| json!({ "role": row.role, "content": row.content }))
        .collect()
}

pub fn message_view(row: &MessageRow) -> MessageView {
    MessageView {
        id: row.id,
        role: row.role.clone(),
        content: row.content.clone(),
        model: row.model.clone(),
        // A reply still marked streaming after a restart was cut off.
        status: if row.status == "streaming" {
            "stopped".into()
        } else {
            row.status.clone()
        },
        error: row.error.clone(),
        paid_by: row.paid_by.clone(),
        input_tokens: row.input_tokens,
        output_tokens: row.output_tokens,
        cost_micro_usd: row.cost_micro_usd,
    }
}

pub fn conversation_view(conversation: &ConversationRow, rows: &[MessageRow]) -> ConversationView {
    ConversationView {
        id: conversation.id,
        title: conversation.title.clone(),
        model: conversation.model.clone(),
        messages: rows.iter().map(message_view).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(role: &str, content: &str, status: &str) -> MessageRow {
        MessageRow {
            id: 0,
            role: role.into(),
            content: content.into(),
            model: String::new(),
            status: status.into(),
            error: None,
            paid_by: None,
            input_tokens: 0,
            output_tokens: 0,
            cost_micro_usd: 0,
            created_at: 0,
        }
    }

    #[test]
    fn titles_come_from_the_first_line() {
        assert_eq!(title_from("\n  Hello there\nsecond"), "Hello there");
        assert_eq!(title_from(&"x".repeat(70)), format!("{}…", "x".repeat(60)));
        assert_eq!(title_from("   "), "New chat");
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
