//! A small, safe syntax highlighter: strings, comments, numbers and keywords
//! for the languages models write most. Everything it emits is escaped text
//! inside `<span class="tok-…">`.

const KEYWORDS: &[&str] = &[
    // Rust
    "fn",
    "let",
    "mut",
    "pub",
    "struct",
    "enum",
    "impl",
    "trait",
    "use",
    "mod",
    "match",
    "if",
    "else",
    "for",
    "while",
    "loop",
    "return",
    "async",
    "await",
    "move",
    "where",
    "self",
    "Self",
    "crate",
    "const",
    "static",
    "ref",
    "type",
    "dyn",
    "unsafe",
    "in",
    "as",
    "break",
    "continue",
    "true",
    "false",
    // Python
    "def",
    "class",
    "import",
    "from",
    "elif",
    "try",
    "except",
    "finally",
    "with",
    "lambda",
    "yield",
    "None",
    "True",
    "False",
    "and",
    "or",
    "not",
    "is",
    "pass",
    "raise",
    "print",
    // JavaScript / TypeScript
    "function",
    "var",
    "new",
    "this",
    "typeof",
    "instanceof",
    "export",
    "default",
    "interface",
    "extends",
    "implements",
    "null",
    "undefined",
    "switch",
    "case",
    "catch",
    "throw",
    // Go, C, Java, shell
    "func",
    "package",
    "go",
    "defer",
    "chan",
    "map",
    "int",
    "void",
    "char",
    "double",
    "float",
    "bool",
    "string",
    "public",
    "private",
    "protected",
    "echo",
    "then",
    "fi",
    "do",
    "done",
];

pub fn escape(text: &str, out: &mut String) {
    for c in text.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
}

fn span(class: &str, text: &str, out: &mut String) {
    out.push_str("<span class=\"tok-");
    out.push_str(class);
    out.push_str("\">");
    escape(text, out);
    out.push_str("</span>");
}

/// `<pre><code class="language-…">` with highlighted, escaped content.
pub fn code_block(lang: &str, code: &str) -> String {
    let lang: String = lang
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '+'))
        .take(20)
        .collect();
    let mut out = String::with_capacity(code.len() * 2);
    out.push_str("<pre class=\"code\" tabindex=\"0\"><code");
    if !lang.is_empty() {
        out.push_str(" class=\"language-");
        out.push_str(&lang);
        out.push('"');
    }
    out.push('>');
    highlight(code, &hash_comments(&lang), &mut out);
    out.push_str("</code></pre>\n");
    out
}

/// Languages where `#` starts a comment.
fn hash_comments(lang: &str) -> bool {
    matches!(
        lang,
        "python"
            | "py"
            | "sh"
            | "bash"
            | "shell"
            | "zsh"
            | "ruby"
            | "rb"
            | "yaml"
            | "yml"
            | "toml"
            | "perl"
            | "r"
    )
}

fn highlight(code: &str, hash_comment: &bool, out: &mut String) {
    let chars: Vec<char> = code.chars().collect();
    let mut i = 0;
    let take_while = |start: usize, pred: &dyn Fn(char) -> bool| {
        let mut end = start;
        while end < chars.len() && pred(chars[end]) {
            end += 1;
        }
        end
    };
    let text = |a: usize, b: usize| chars[a..b].iter().collect::<String>();
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if (c == '/' && next == Some('/'))
            || (c == '#' && *hash_comment)
            || (c == '-' && next == Some('-') && !*hash_comment)
        {
            let end = take_while(i, &|c| c != '\n');
            span("com", &text(i, end), out);
            i = end;
        } else if c == '/' && next == Some('*') {
            let mut end = i + 2;
            while end < chars.len() && !(chars[end] == '*' && chars.get(end + 1) == Some(&'/')) {
                end += 1;
            }
            end = (end + 2).min(chars.len());
            span("com", &text(i, end), out);
            i = end;
        } else if matches!(c, '"' | '\'' | '`') {
            let mut end = i + 1;
            while end < chars.len() && chars[end] != c && chars[end] != '\n' {
                if chars[end] == '\\' {
                    end += 1;
                }
                end += 1;
            }
            end = (end + 1).min(chars.len());
            span("str", &text(i, end), out);
            i = end;
        } else if c.is_ascii_digit() {
            let end = take_while(i, &|c| c.is_ascii_alphanumeric() || c == '.' || c == '_');
            span("num", &text(i, end), out);
            i = end;
        } else if c.is_alphabetic() || c == '_' {
            let end = take_while(i, &|c| c.is_alphanumeric() || c == '_');
            let word = text(i, end);
            if KEYWORDS.contains(&word.as_str()) {
                span("kw", &word, out);
            } else {
                escape(&word, out);
            }
            i = end;
        } else {
            escape(&c.to_string(), out);
            i += 1;
        }
    }
}
