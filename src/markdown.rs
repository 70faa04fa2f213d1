//! Markdown for model replies, rendered safely (on the server for history,
//! in the browser while a reply streams).
//!
//! Model output is untrusted. Raw HTML in the input is shown as text, never
//! passed through; links and images keep only `http`, `https`, `mailto` and
//! relative targets (so no `javascript:` or `data:`); code blocks get a
//! small keyword/string/comment highlighter whose output is escaped text in
//! `<span class="tok-…">`. The result is therefore safe for `inner_html`.

use pulldown_cmark::{CodeBlockKind, CowStr, Event, LinkType, Options, Parser, Tag, TagEnd};

mod highlight;

/// Renders `source` to sanitized HTML.
pub fn render(source: &str) -> String {
    let options =
        Options::ENABLE_TABLES | Options::ENABLE_STRIKETHROUGH | Options::ENABLE_TASKLISTS;
    let mut events = Vec::new();
    let mut code: Option<(String, String)> = None;
    for event in Parser::new_ext(source, options) {
        match (&mut code, event) {
            (None, Event::Start(Tag::CodeBlock(kind))) => {
                let lang = match kind {
                    CodeBlockKind::Fenced(info) => {
                        info.split_whitespace().next().unwrap_or("").to_owned()
                    }
                    CodeBlockKind::Indented => String::new(),
                };
                code = Some((lang, String::new()));
            }
            (Some((_, text)), Event::Text(chunk)) => text.push_str(&chunk),
            (Some(_), Event::End(TagEnd::CodeBlock)) => {
                let (lang, text) = code.take().unwrap_or_default();
                events.push(Event::Html(CowStr::from(highlight::code_block(
                    &lang, &text,
                ))));
            }
            (Some(_), _) => {}
            (None, event) => events.push(sanitize(event)),
        }
    }
    // A reply cut mid-code-block still shows its code.
    if let Some((lang, text)) = code {
        events.push(Event::Html(CowStr::from(highlight::code_block(
            &lang, &text,
        ))));
    }
    let mut html = String::with_capacity(source.len() * 3 / 2);
    pulldown_cmark::html::push_html(&mut html, events.into_iter());
    html
}

fn sanitize(event: Event<'_>) -> Event<'_> {
    match event {
        // Raw HTML from the model is displayed, not interpreted.
        Event::Html(raw) | Event::InlineHtml(raw) => Event::Text(raw),
        Event::Start(Tag::Link {
            link_type,
            dest_url,
            title,
            id,
        }) => Event::Start(Tag::Link {
            link_type,
            dest_url: safe_url(dest_url),
            title,
            id,
        }),
        Event::Start(Tag::Image {
            link_type,
            dest_url,
            title,
            id,
        }) => Event::Start(Tag::Image {
            link_type: if matches!(link_type, LinkType::Email) {
                LinkType::Inline
            } else {
                link_type
            },
            dest_url: safe_url(dest_url),
            title,
            id,
        }),
        other => other,
    }
}

/// Keeps web, mail and relative links; anything else (javascript:, data:,
/// vbscript:, file:, …) becomes an inert `#`.
fn safe_url(url: CowStr<'_>) -> CowStr<'_> {
    let trimmed: String = url
        .chars()
        .filter(|c| !c.is_ascii_control() && !c.is_whitespace())
        .collect();
    let lower = trimmed.to_ascii_lowercase();
    let scheme = lower.split_once(':').map(|(scheme, _)| scheme);
    let has_scheme = scheme.is_some_and(|s| !s.contains(['/', '?', '#']));
    let allowed = !has_scheme || matches!(scheme, Some("http" | "https" | "mailto"));
    if allowed {
        url
    } else {
        CowStr::Borrowed("#")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALLOWED_ELEMENTS: &[&str] = &[
        "p",
        "em",
        "strong",
        "del",
        "code",
        "pre",
        "span",
        "a",
        "img",
        "ul",
        "ol",
        "li",
        "blockquote",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "hr",
        "br",
        "table",
        "thead",
        "tbody",
        "tr",
        "th",
        "td",
        "input",
    ];

    /// Each tag in `html` (`<…>`, escaped text aside): its element name,
    /// lowercased, and its `href` and `src` values.
    fn tags(html: &str) -> Vec<(String, Vec<String>)> {
        html.match_indices('<')
            .map(|(at, _)| {
                let tag = &html[at + 1..];
                let tag = &tag[..tag.find('>').unwrap_or(tag.len())];
                let name = tag
                    .trim_start_matches('/')
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric())
                    .collect::<String>()
                    .to_ascii_lowercase();
                let urls = ["href=\"", "src=\""]
                    .iter()
                    .flat_map(|attr| {
                        tag.match_indices(attr).map(move |(at, _)| {
                            let rest = &tag[at + attr.len()..];
                            rest[..rest.find('"').unwrap_or(rest.len())].to_ascii_lowercase()
                        })
                    })
                    .collect();
                (name, urls)
            })
            .collect()
    }

    /// Whether any tag named `element` in `html` carries an `on…=` event
    /// handler or a `style=` attribute.
    fn has_event_or_style_attribute(html: &str, element: &str) -> bool {
        html.match_indices('<').any(|(at, _)| {
            let tag = &html[at + 1..];
            let tag = &tag[..tag.find('>').unwrap_or(tag.len())].to_ascii_lowercase();
            tag.starts_with(element)
                && tag.split_whitespace().skip(1).any(|attribute| {
                    let name = attribute.split('=').next().unwrap_or("");
                    (name.starts_with("on") && attribute.contains('=')) || name == "style"
                })
        })
    }

    use proptest::strategy::Strategy as _;

    proptest::proptest! {
        /// Whatever the model writes: only allowed elements, and no link or
        /// image with a script or data URL.
        #[test]
        fn any_input_renders_to_allowed_elements_and_safe_urls(
            pieces in proptest::collection::vec(
                proptest::prop_oneof![
                    proptest::sample::select(vec![
                        "<script>alert(1)</script>", "<img src=x onerror=alert(1)>", "<a href=\"javascript:x\">",
                        "[x](javascript:alert(1))", "![i](data:text/html,x)", "[y](JaVaScRiPt:a)", "<javascript:a>",
                        "[z](java\tscript:b)", "```js\n<b>x</b>\n```", "`<i>`", "| a | b |\n|---|---|\n| <u> | c |",
                        "- [ ] task", "> quote", "# h", "**b**", "~~d~~", "\n\n", "<!-- c -->", "&lt;", "<div>",
                        "[r][ref]\n\n[ref]: vbscript:x", "<svg onload=x>", "<iframe>",
                    ]).prop_map(str::to_owned),
                    "[ -~]{0,12}",
                ],
                0..12,
            ),
        ) {
            let html = render(&pieces.concat());
            for (element, urls) in tags(&html) {
                proptest::prop_assert!(
                    ALLOWED_ELEMENTS.contains(&element.as_str()),
                    "<{}> in {}", element, html
                );
                proptest::prop_assert!(
                    !has_event_or_style_attribute(&html, &element),
                    "an event handler or style in {}", html
                );
                for url in urls {
                    for scheme in ["javascript:", "data:", "vbscript:"] {
                        proptest::prop_assert!(!url.starts_with(scheme), "{} in {}", url, html);
                    }
                }
            }
        }
    }

    #[test]
    fn renders_basic_markdown() {
        let html = render("**bold** and `code`\n\n- one\n- two");
        assert!(html.contains("<strong>bold</strong>"));
        assert!(html.contains("<code>code</code>"));
        assert!(html.contains("<li>one</li>"));
    }

    #[test]
    fn raw_html_is_escaped() {
        let html = render("hi <script>alert(1)</script> <img src=x onerror=alert(1)>");
        assert!(!html.contains("<script"), "{html}");
        assert!(!html.contains("<img"), "{html}");
        assert!(html.contains("&lt;script&gt;"), "{html}");

        let block = render("<div onclick=\"steal()\">\n\nclick\n</div>");
        assert!(!block.contains("<div"), "{block}");
    }

    #[test]
    fn dangerous_links_are_dropped() {
        for bad in [
            "javascript:alert(1)",
            "JavaScript:alert(1)",
            "java\tscript:alert(1)",
            "data:text/html,<b>x</b>",
            "vbscript:x",
        ] {
            let html = render(&format!("[click]({bad})"));
            // Either no link at all (not valid markdown) or an inert one.
            assert!(
                !html.contains("<a") || html.contains("href=\"#\""),
                "{bad}: {html}"
            );
            assert!(
                !html.to_lowercase().contains("href=\"java"),
                "{bad}: {html}"
            );
            assert!(!html.contains("href=\"data"), "{bad}: {html}");
        }
        let image = render("![x](data:image/svg+xml;base64,PHN2Zz4=)");
        assert!(image.contains("src=\"#\""), "{image}");
        let autolink = render("<javascript:alert(1)>");
        assert!(!autolink.contains("href=\"javascript"), "{autolink}");
    }

    #[test]
    fn safe_links_are_kept() {
        let html = render(
            "[a](https://example.com/x?y=1) [b](/chat/2) [c](mailto:a@example.com) [d](#top)",
        );
        assert!(html.contains("href=\"https://example.com/x?y=1\""));
        assert!(html.contains("href=\"/chat/2\""));
        assert!(html.contains("href=\"mailto:a@example.com\""));
        assert!(html.contains("href=\"#top\""));
    }

    #[test]
    fn code_blocks_are_highlighted_and_escaped() {
        let html = render("```rust\nfn main() { let s = \"<b>\"; } // done\n```");
        assert!(html.contains("class=\"language-rust\""), "{html}");
        assert!(html.contains("<span class=\"tok-kw\">fn</span>"), "{html}");
        assert!(
            html.contains("<span class=\"tok-str\">&quot;&lt;b&gt;&quot;</span>"),
            "{html}"
        );
        assert!(
            html.contains("<span class=\"tok-com\">// done</span>"),
            "{html}"
        );
    }

    #[test]
    fn unterminated_code_block_still_renders() {
        let html = render("```python\nprint('hi')");
        assert!(html.contains("tok-kw") || html.contains("print"), "{html}");
        assert!(html.contains("<pre"), "{html}");
    }

    #[test]
    fn hostile_language_tags_cannot_break_out() {
        let html = render("```\"><script>x</script>\ncode\n```");
        assert!(!html.contains("<script"), "{html}");
    }
}
