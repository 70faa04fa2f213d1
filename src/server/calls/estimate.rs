//! The one token estimator: for reservations before a call, and for the
//! ledger when a call ends without the usage Anthropic would have reported.
//!
//! Every estimate is meant as an upper bound, because it decides how much
//! of a limit a call may take and what a call that never reported its usage
//! is billed. Text is counted in bytes, not characters, at half a token a
//! byte: English prose runs about four bytes a token, digits or symbols
//! between spaces about two, CJK three bytes a character at a token or so
//! each. Only byte soup (a token for every byte) is denser; its settlement
//! then replaces the estimate with Anthropic's count. Every part of the
//! body counts — keys and values, schemas and tool definitions — plus the
//! system prompt Anthropic adds when tools are offered. Content whose size
//! the request does not show (an image, a PDF, a URL) counts at the most it
//! can cost.

use serde_json::Value;

/// An image after Anthropic's resizing (long edge 1,568 px, about 1.15
/// megapixels) costs at most about 1,600 tokens.
pub const IMAGE_WORST_TOKENS: i64 = 1_600;
/// A PDF has at most 100 pages, each read as an image and as text.
pub const DOCUMENT_WORST_TOKENS: i64 = 100 * (IMAGE_WORST_TOKENS + 1_400);
/// Role, block and message framing around each piece of content.
const FRAMING_TOKENS: i64 = 4;
/// The system prompt Anthropic adds when a request offers tools (about
/// 350 tokens, depending on the model and `tool_choice`), rounded up.
const TOOL_USE_SYSTEM_TOKENS: i64 = 500;

/// Bytes of text, counted as they stream past.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TextBytes(u64);

impl TextBytes {
    pub fn of(text: &str) -> Self {
        Self(text.len() as u64)
    }

    pub fn add(&mut self, text: &str) {
        self.0 = self.0.saturating_add(text.len() as u64);
    }

    /// The tokens this text can be: half a token a byte, rounded up.
    pub fn tokens(&self) -> i64 {
        i64::try_from(self.0.div_ceil(2)).unwrap_or(i64::MAX)
    }
}

/// The most input tokens a Messages request body can cost: its system
/// prompt, messages, tools and MCP server definitions.
pub fn request_input_tokens(body: &Value) -> i64 {
    let offers_tools = body
        .get("tools")
        .and_then(Value::as_array)
        .is_some_and(|tools| !tools.is_empty());
    let tool_prompt = if offers_tools {
        TOOL_USE_SYSTEM_TOKENS
    } else {
        0
    };
    ["system", "messages", "tools", "mcp_servers", "tool_choice"]
        .iter()
        .filter_map(|field| body.get(field))
        .map(content_tokens)
        .fold(tool_prompt, i64::saturating_add)
        .max(1)
}

fn content_tokens(value: &Value) -> i64 {
    match value {
        Value::String(text) => text_tokens(text),
        Value::Array(items) => items
            .iter()
            .map(content_tokens)
            .fold(0, i64::saturating_add),
        Value::Object(map) => match map.get("type").and_then(Value::as_str) {
            Some("image") => IMAGE_WORST_TOKENS,
            Some("document") => document_tokens(map),
            _ => map
                .iter()
                .map(|(key, value)| text_tokens(key).saturating_add(content_tokens(value)))
                .fold(FRAMING_TOKENS, i64::saturating_add),
        },
        _ => 1,
    }
}

fn text_tokens(text: &str) -> i64 {
    TextBytes::of(text).tokens().saturating_add(1)
}

/// A plain-text or content-block document shows its size; a PDF (inline
/// or by URL) or a file reference does not.
fn document_tokens(map: &serde_json::Map<String, Value>) -> i64 {
    let source = map.get("source");
    let source_type = source.and_then(|s| s.get("type")).and_then(Value::as_str);
    let shown = match source_type {
        Some("text") => source.and_then(|s| s.get("data")),
        Some("content") => source.and_then(|s| s.get("content")),
        _ => None,
    };
    let framing: i64 = ["title", "context"]
        .iter()
        .filter_map(|field| map.get(*field))
        .map(content_tokens)
        .fold(FRAMING_TOKENS, i64::saturating_add);
    match shown {
        Some(content) => content_tokens(content).saturating_add(framing),
        None => DOCUMENT_WORST_TOKENS.saturating_add(framing),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn text_is_counted_in_bytes_not_characters() {
        assert_eq!(TextBytes::of("").tokens(), 0);
        assert_eq!(TextBytes::of("ab").tokens(), 1);
        assert_eq!(TextBytes::of("abc").tokens(), 2);
        // 3 CJK characters are 9 bytes: more than a token each.
        assert_eq!(TextBytes::of("日本語").tokens(), 5);
        // Digits between spaces run about a token per two bytes.
        assert_eq!(TextBytes::of(&"7 ".repeat(1_000)).tokens(), 1_000);
    }

    #[test]
    fn bytes_streamed_in_pieces_count_like_the_whole() {
        let mut pieces = TextBytes::default();
        for piece in ["Hel", "lo, ", "wörld", "!"] {
            pieces.add(piece);
        }
        assert_eq!(pieces, TextBytes::of("Hello, wörld!"));
    }

    #[test]
    fn images_and_pdfs_count_at_their_worst_and_text_documents_by_size() {
        let image = json!({"messages":[{"role":"user","content":[
            {"type":"image","source":{"type":"base64","data":"A".repeat(1_000_000)}}]}]});
        let estimate = request_input_tokens(&image);
        assert!((IMAGE_WORST_TOKENS..IMAGE_WORST_TOKENS + 50).contains(&estimate));
        let by_url = json!({"messages":[{"role":"user","content":[
            {"type":"document","source":{"type":"url","url":"https://example.com/a.pdf"}}]}]});
        assert!(request_input_tokens(&by_url) >= DOCUMENT_WORST_TOKENS);
        let text_doc = json!({"messages":[{"role":"user","content":[
            {"type":"document","source":{"type":"text","media_type":"text/plain","data":"x".repeat(3_000)}}]}]});
        let estimate = request_input_tokens(&text_doc);
        assert!((1_500..1_600).contains(&estimate), "{estimate}");
    }

    #[test]
    fn keys_count_too_and_offering_tools_adds_anthropics_tool_prompt() {
        let long_key = "k".repeat(30_000);
        let schema = json!({"tools":[{"name":"t","input_schema":{"type":"object","properties":{long_key: {"type":"string"}}}}]});
        let estimate = request_input_tokens(&schema);
        assert!(estimate >= 15_000 + TOOL_USE_SYSTEM_TOKENS, "{estimate}");
        let hello = json!({"messages":[{"role":"user","content":"hello"}]});
        let no_tools = request_input_tokens(&hello);
        assert!(no_tools < 30, "{no_tools}");
        let mut with_empty_tools = hello.clone();
        with_empty_tools["tools"] = json!([]);
        assert_eq!(request_input_tokens(&with_empty_tools), no_tools);
    }

    #[test]
    fn system_tools_and_messages_all_count() {
        let body = json!({
            "system": "s".repeat(300),
            "messages": [{"role":"user","content":"m".repeat(300)}],
            "tools": [{"name":"t","description":"d".repeat(300),"input_schema":{}}],
            "max_tokens": 10,
        });
        assert!(request_input_tokens(&body) >= 300);
        assert_eq!(request_input_tokens(&json!({})), 1);
    }
}
