//! The reply being streamed: signals the page shows as events arrive, and
//! the stored message it becomes.

use leptos::prelude::*;

use super::message::usage_title;
use crate::model::{
    chat::{ChatEvent, MessageView, ReplyUsage},
    domain::{MessageStatus, PaidBy, Speaker},
};

/// The reply being streamed right now.
#[derive(Clone, Copy)]
pub struct LiveReply {
    pub id: RwSignal<i64>,
    pub model: StoredValue<String>,
    pub paid_by: RwSignal<Option<PaidBy>>,
    pub content: RwSignal<String>,
    pub status: RwSignal<MessageStatus>,
    pub error: RwSignal<Option<String>>,
    pub title: RwSignal<String>,
    pub usage: RwSignal<ReplyUsage>,
    pub thinking: RwSignal<String>,
}

impl LiveReply {
    pub fn new(model: String) -> Self {
        Self {
            id: RwSignal::new(0),
            model: StoredValue::new(model),
            paid_by: RwSignal::new(None),
            content: RwSignal::new(String::new()),
            status: RwSignal::new(MessageStatus::Streaming),
            error: RwSignal::new(None),
            title: RwSignal::new(String::new()),
            usage: RwSignal::new(ReplyUsage::default()),
            thinking: RwSignal::new(String::new()),
        }
    }

    pub fn to_view(self) -> MessageView {
        let usage = self.usage.get_untracked();
        MessageView {
            id: self.id.get_untracked(),
            role: Speaker::Assistant,
            content: self.content.get_untracked(),
            model: self.model.get_value(),
            status: self.status.get_untracked(),
            error: self.error.get_untracked(),
            paid_by: self.paid_by.get_untracked(),
            input_tokens: usage.input_tokens,
            output_tokens: usage.output_tokens,
            cost_micro_usd: usage.cost_micro_usd,
            cache_read_tokens: usage.cache_read_tokens,
            saved_micro_usd: usage.saved_micro_usd,
            thinking: Some(self.thinking.get_untracked()).filter(|t| !t.is_empty()),
        }
    }

    pub fn apply(self, event: &ChatEvent) {
        match event {
            ChatEvent::Started {
                assistant_message_id,
                paid_by,
                ..
            } => {
                self.id.set(*assistant_message_id);
                self.paid_by.set(Some(*paid_by));
            }
            ChatEvent::Delta { text } => self.content.update(|c| c.push_str(text)),
            ChatEvent::Thinking { text } => self.thinking.update(|t| t.push_str(text)),
            ChatEvent::Finished {
                status,
                error,
                input_tokens,
                output_tokens,
                cost_micro_usd,
                cache_read_tokens,
                saved_micro_usd,
            } => {
                let usage = ReplyUsage {
                    input_tokens: *input_tokens,
                    output_tokens: *output_tokens,
                    cost_micro_usd: *cost_micro_usd,
                    cache_read_tokens: *cache_read_tokens,
                    saved_micro_usd: *saved_micro_usd,
                };
                self.status.set(*status);
                self.error.set(error.clone());
                self.usage.set(usage);
                self.title.set(usage_title(&self.model.get_value(), usage));
            }
        }
    }
}
