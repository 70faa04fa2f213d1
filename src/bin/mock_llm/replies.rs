//! Canned but plausible replies, cut into stream-sized pieces.

const REPLIES: [&str; 3] = [
    "Here is a short answer from the **demo model**.\n\n\
     keyward is running without an Anthropic key, so replies are canned. A few things you can try:\n\n\
     1. Paste your own API key in *Settings* to talk to the real Claude.\n\
     2. Ask for code to see highlighting:\n\n\
     ```rust\nfn main() {\n    println!(\"Hello from keyward\");\n}\n```\n\n\
     That is all for now.",
    "Good question. In short:\n\n\
     - The **platform key** pays for free-tier chats, within limits.\n\
     - **Your own key** pays for your chats, without those limits.\n\n\
     ```python\nimport anthropic\nclient = anthropic.Anthropic()\n```\n\n\
     Every call is recorded with who paid for it.",
    "Sure. A tiny example in TypeScript:\n\n\
     ```ts\nconst greet = (name: string) => `Hello, ${name}!`;\nconsole.log(greet('world'));\n```\n\n\
     Let me know if you want more detail.",
];

/// Picks a reply from the prompt, so the same prompt gets the same reply.
pub fn reply_for(prompt: &str) -> &'static str {
    let sum: usize = prompt.bytes().map(usize::from).sum();
    REPLIES[sum % REPLIES.len()]
}

/// Splits text into word-sized pieces that join back to the same text; one
/// piece is one output token for the mock's usage accounting.
pub fn pieces(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    for (i, c) in text.char_indices() {
        if c == ' ' || c == '\n' {
            out.push(&text[start..i + 1]);
            start = i + 1;
        }
    }
    if start < text.len() {
        out.push(&text[start..]);
    }
    out
}

/// The thinking the mock shows when a request turns extended thinking on.
pub const THINKING: &str = "Let me think this through step by step before I answer.";

/// A rough input token count (4 characters a token), at least 1.
pub fn estimate_tokens(text: &str) -> u64 {
    (text.chars().count() as u64).div_ceil(4).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_join_back() {
        for reply in REPLIES {
            assert_eq!(pieces(reply).concat(), reply);
        }
    }
}
