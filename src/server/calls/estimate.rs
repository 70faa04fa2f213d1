//! The one token estimator: for reservations before a call, and for the
//! ledger when a call ends without the usage Anthropic would have reported.
//!
//! Every estimate is an upper bound, because it decides how much of a limit
//! a call may take and what a call that never reported its usage is billed.
//! Text is counted in bytes, not characters: English runs about four bytes
//! a token, so a third of a token per ASCII byte is generous; other scripts
//! take two or three bytes a character and often a token or more per
//! character (CJK), so every other byte counts half a token. Content whose
//! size the request does not show (an image, a PDF, a URL) counts at the
//! most it can cost.

use serde_json::Value;

/// An image after Anthropic's resizing (long edge 1,568 px, about 1.15
/// megapixels) costs at most about 1,600 tokens.
pub const IMAGE_WORST_TOKENS: i64 = 1_600;
/// A PDF has at most 100 pages, each read as an image and as text.
pub const DOCUMENT_WORST_TOKENS: i64 = 100 * (IMAGE_WORST_TOKENS + 1_400);
/// Role, block and message framing around each piece of content.
const FRAMING_TOKENS: i64 = 4;

/// Bytes of text, counted as they stream past.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TextBytes {
    ascii: u64,
    other: u64,
}

impl TextBytes {
    pub fn of(text: &str) -> Self {
        let mut bytes = Self::default();
        bytes.add(text);
        bytes
    }

    pub fn add(&mut self, text: &str) {
        let ascii = text.bytes().filter(u8::is_ascii).count() as u64;
        self.ascii += ascii;
        self.other += text.len() as u64 - ascii;
    }

    pub fn is_empty(&self) -> bool {
        self.ascii == 0 && self.other == 0
    }

    /// The most tokens this text can be.
    pub fn tokens(&self) -> i64 {
        let tokens = self.ascii.div_ceil(3) + self.other.div_ceil(2);
        i64::try_from(tokens).unwrap_or(i64::MAX)
    }
}

/// The most input tokens a Messages request body can cost: its system
/// prompt, messages, tools and MCP server definitions.
pub fn request_input_tokens(body: &Value) -> i64 {
    ["system", "messages", "tools", "mcp_servers", "tool_choice"]
        .iter()
        .filter_map(|field| body.get(field))
        .map(content_tokens)
        .fold(0i64, i64::saturating_add)
        .max(1)
}

fn content_tokens(value: &Value) -> i64 {
    match value {
        Value::String(text) => TextBytes::of(text).tokens().saturating_add(1),
        Value::Array(items) => items
            .iter()
            .map(content_tokens)
            .fold(0, i64::saturating_add),
        Value::Object(map) => match map.get("type").and_then(Value::as_str) {
            Some("image") => IMAGE_WORST_TOKENS,
            Some("document") => document_tokens(map),
            _ => map
                .values()
                .map(content_tokens)
                .fold(FRAMING_TOKENS, i64::saturating_add),
        },
        _ => 1,
    }
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
    fn text_is_counted_in_bytes_and_other_scripts_weigh_more() {
        assert_eq!(TextBytes::of("").tokens(), 0);
        assert_eq!(TextBytes::of("abc").tokens(), 1);
        assert_eq!(TextBytes::of("abcd").tokens(), 2);
        // 3 CJK characters are 9 bytes: at least one token each.
        assert!(TextBytes::of("日本語").tokens() >= 3);
        // 4,000 characters of CJK weigh three times 4,000 of ASCII's bytes.
        let cjk = TextBytes::of(&"語".repeat(4_000)).tokens();
        let ascii = TextBytes::of(&"a".repeat(4_000)).tokens();
        assert!(cjk >= 4_000 && ascii >= 1_000, "{cjk} {ascii}");
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
        assert!((1_000..1_100).contains(&estimate), "{estimate}");
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
