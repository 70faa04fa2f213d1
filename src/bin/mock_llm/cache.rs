//! Prompt caching, emulated closely enough to test what keyward does with
//! it. A request's prompt is a sequence of blocks (the system prompt's,
//! then each message's content). The prefix up to a block carrying
//! `cache_control` is written to the cache, per API key and model, for
//! five minutes (or an hour, with `"ttl": "1h"`) from its last use, if it
//! is at least the model's minimum length. A later request whose prompt starts with a cached prefix (looked
//! up at the last breakpoint and the 20 block boundaries before it, as
//! Anthropic does) reads it: usage reports the prefix read as
//! `cache_read_input_tokens`, the rest of the prefix up to the breakpoint
//! as `cache_creation_input_tokens` (split by lifetime in `cache_creation`),
//! and what follows as `input_tokens`.
//! More than four breakpoints is refused, as Anthropic refuses it.

use std::{
    collections::HashMap,
    hash::{DefaultHasher, Hash, Hasher},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use serde_json::Value;

use crate::{replies::estimate_tokens, server::collect_text};

const FIVE_MINUTES: Duration = Duration::from_secs(5 * 60);
const ONE_HOUR: Duration = Duration::from_secs(60 * 60);
/// Block boundaries before a breakpoint where a cached prefix is found.
const LOOKBACK_BLOCKS: usize = 20;
pub const MAX_BREAKPOINTS: usize = 4;

/// How a request's input tokens split.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Split {
    pub input: u64,
    /// Written, whatever the lifetime (Anthropic's `cache_creation_input_tokens`).
    pub cache_creation: u64,
    /// The part of `cache_creation` written for an hour.
    pub cache_creation_1h: u64,
    pub cache_read: u64,
}

/// A cached prefix, by (API key, prefix hash): when it expires, and the
/// lifetime a read starts again.
type Entry = (Instant, Duration);

#[derive(Clone, Default)]
pub struct PromptCache {
    entries: Arc<Mutex<HashMap<(String, u64), Entry>>>,
}

impl PromptCache {
    /// Splits `body`'s input tokens for a call on `key`, and caches what it
    /// asks to. `total` is the whole prompt's token count.
    pub fn split(&self, key: &str, body: &Value, total: u64) -> Split {
        let blocks = blocks(body);
        let Some(last_breakpoint) = blocks.iter().rposition(|block| block.ttl.is_some()) else {
            return Split {
                input: total,
                ..Split::default()
            };
        };
        let model = body["model"].as_str().unwrap_or_default();
        let mut text = String::new();
        let mut hasher = DefaultHasher::new();
        // Another model has a cache of its own.
        model.hash(&mut hasher);
        // (hash, tokens) of every prefix ending at a block boundary.
        let mut prefixes = Vec::with_capacity(last_breakpoint + 1);
        for block in &blocks[..=last_breakpoint] {
            block.text.hash(&mut hasher);
            text.push_str(&block.text);
            prefixes.push((hasher.finish(), estimate_tokens(&text)));
        }
        let now = Instant::now();
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries.retain(|_, (expires, _)| *expires > now);
        let read = prefixes
            .iter()
            .rev()
            .take(LOOKBACK_BLOCKS + 1)
            .find(|(hash, _)| entries.contains_key(&(key.to_owned(), *hash)))
            .copied();
        // A read starts the entry's lifetime again.
        if let Some((hash, _)) = read {
            if let Some((expires, ttl)) = entries.get_mut(&(key.to_owned(), hash)) {
                *expires = now + *ttl;
            }
        }
        let read_tokens = read.map_or(0, |(_, tokens)| tokens);
        let (prefix_hash, prefix_tokens) = prefixes[last_breakpoint];
        let ttl = blocks[last_breakpoint].ttl.unwrap_or(FIVE_MINUTES);
        let mut written = 0;
        if prefix_tokens >= minimum_cacheable(model) && prefix_tokens > read_tokens {
            entries.insert((key.to_owned(), prefix_hash), (now + ttl, ttl));
            written = prefix_tokens - read_tokens;
        }
        Split {
            input: total.saturating_sub(read_tokens + written),
            cache_creation: written,
            cache_creation_1h: if ttl == ONE_HOUR { written } else { 0 },
            cache_read: read_tokens,
        }
    }
}

/// Anthropic's minimum cacheable prompt for a model family (the largest
/// in the family, as keyward assumes).
fn minimum_cacheable(model: &str) -> u64 {
    if model.starts_with("claude-opus-4-0") || model.starts_with("claude-opus-4-1") {
        1024
    } else if model.starts_with("claude-sonnet-4") {
        2048
    } else {
        4096
    }
}

/// A `cache_control.ttl` Anthropic would refuse (it knows `5m` and `1h`).
pub fn unknown_ttl(body: &Value) -> Option<String> {
    let system = body["system"].as_array().into_iter().flatten();
    let messages = body["messages"].as_array().into_iter().flatten();
    let contents = messages
        .filter_map(|message| message["content"].as_array())
        .flatten();
    system
        .chain(contents)
        .filter_map(|block| block["cache_control"].get("ttl"))
        .find(|ttl| !matches!(ttl.as_str(), Some("5m" | "1h")))
        .map(Value::to_string)
}

/// How many `cache_control` breakpoints `body` carries.
pub fn breakpoints(body: &Value) -> usize {
    blocks(body)
        .iter()
        .filter(|block| block.ttl.is_some())
        .count()
}

struct Block {
    text: String,
    /// A breakpoint's lifetime; `None` for a block without `cache_control`.
    ttl: Option<Duration>,
}

fn blocks(body: &Value) -> Vec<Block> {
    let mut blocks = Vec::new();
    push_blocks(&body["system"], &mut blocks);
    for message in body["messages"].as_array().into_iter().flatten() {
        push_blocks(&message["content"], &mut blocks);
    }
    blocks
}

fn push_blocks(content: &Value, blocks: &mut Vec<Block>) {
    match content {
        Value::String(text) => blocks.push(Block {
            text: text.clone(),
            ttl: None,
        }),
        Value::Array(items) => {
            for item in items {
                let mut text = String::new();
                collect_text(item, &mut text);
                blocks.push(Block {
                    text,
                    ttl: item.get("cache_control").map(|control| {
                        if control["ttl"] == "1h" {
                            ONE_HOUR
                        } else {
                            FIVE_MINUTES
                        }
                    }),
                });
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn turn(texts: &[&str]) -> Value {
        let last = texts.len() - 1;
        let messages: Vec<Value> = texts
            .iter()
            .enumerate()
            .map(|(i, text)| {
                let role = if i % 2 == 0 { "user" } else { "assistant" };
                if i == last {
                    json!({ "role": role, "content": [{ "type": "text", "text": text, "cache_control": { "type": "ephemeral" } }] })
                } else {
                    json!({ "role": role, "content": text })
                }
            })
            .collect();
        json!({ "model": "claude-haiku-4-5", "messages": messages })
    }

    #[test]
    fn each_turn_reads_what_the_last_one_wrote() {
        let cache = PromptCache::default();
        let long = "x".repeat(4 * 5000);
        let first = turn(&[&long]);
        let one = cache.split("k", &first, 5000);
        assert_eq!(
            one,
            Split {
                input: 0,
                cache_creation: 5000,
                cache_creation_1h: 0,
                cache_read: 0
            }
        );
        let second = turn(&[&long, "yyyy", "zzzz"]);
        let two = cache.split("k", &second, 5002);
        assert_eq!(
            two,
            Split {
                input: 0,
                cache_creation: 2,
                cache_creation_1h: 0,
                cache_read: 5000
            }
        );
        assert_eq!(
            cache.split("other key", &second, 5002).cache_read,
            0,
            "per key"
        );
        let mut other_model = second.clone();
        other_model["model"] = json!("claude-opus-4-7");
        assert_eq!(
            cache.split("k", &other_model, 5002).cache_read,
            0,
            "per model"
        );
    }

    #[test]
    fn an_hour_long_write_is_reported_apart() {
        let cache = PromptCache::default();
        let long = "x".repeat(4 * 5000);
        let mut first = turn(&[&long]);
        first["messages"][0]["content"][0]["cache_control"]["ttl"] = json!("1h");
        let split = cache.split("k", &first, 5000);
        assert_eq!(
            (split.cache_creation, split.cache_creation_1h),
            (5000, 5000)
        );
        let second = turn(&[&long, "yyyy", "zzzz"]);
        assert_eq!(cache.split("k", &second, 5002).cache_read, 5000);
    }

    #[test]
    fn a_ttl_other_than_five_minutes_or_an_hour_is_named() {
        let mut body = turn(&["hello"]);
        assert_eq!(unknown_ttl(&body), None);
        body["messages"][0]["content"][0]["cache_control"]["ttl"] = json!("1h");
        assert_eq!(unknown_ttl(&body), None);
        body["messages"][0]["content"][0]["cache_control"]["ttl"] = json!("2h");
        assert_eq!(unknown_ttl(&body).as_deref(), Some("\"2h\""));
    }

    #[test]
    fn a_prefix_is_found_only_within_twenty_blocks_of_the_breakpoint() {
        let cache = PromptCache::default();
        let long = "x".repeat(4 * 5000);
        cache.split("k", &turn(&[&long]), 5000);
        let mut texts = vec![long.as_str()];
        texts.extend(std::iter::repeat_n("more", 21));
        let far = turn(&texts);
        assert_eq!(cache.split("k", &far, 5021).cache_read, 0);
        assert_eq!(breakpoints(&far), 1);
    }

    #[test]
    fn below_the_minimum_or_without_a_breakpoint_nothing_is_cached() {
        let cache = PromptCache::default();
        let short = turn(&["hello"]);
        assert_eq!(
            cache.split("k", &short, 2),
            Split {
                input: 2,
                ..Split::default()
            }
        );
        let plain = json!({ "model": "claude-haiku-4-5", "messages": [{ "role": "user", "content": "x".repeat(40_000) }] });
        assert_eq!(cache.split("k", &plain, 10_000).input, 10_000);
    }
}
