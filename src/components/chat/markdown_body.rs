//! A reply's body: its markdown, rendered to HTML and kept in step with the
//! text as it streams in.
//!
//! Given to `inner_html` as a closure, the render would also run when the
//! browser hydrates a stored reply, only for the result to be thrown away:
//! hydration keeps the server's HTML. On a conversation of a few replies with
//! code, that was parsing and highlighting every reply again on the page's
//! longest task. This value keeps what the server sent and renders only
//! when the text changes.

use leptos::{
    prelude::*,
    reactive::effect::RenderEffect,
    tachys::{
        html::{attribute::IntoAttributeValue, element::InnerHtmlValue},
        renderer::{types::Element, Rndr},
    },
};

use crate::markdown;

/// The HTML of `text`, rendered as markdown, for an element's `inner_html`.
#[derive(Clone, Copy)]
pub struct MarkdownHtml(pub Signal<String>);

/// The element whose content the effect keeps rendered, and the effect.
pub struct MarkdownHtmlState {
    element: Element,
    _effect: RenderEffect<()>,
}

impl MarkdownHtml {
    /// Renders the text into `element` now (unless `keep_first` says the
    /// element already shows it) and again whenever it changes.
    fn follow(self, element: &Element, keep_first: bool) -> MarkdownHtmlState {
        let target = element.clone();
        let text = self.0;
        let effect = RenderEffect::new(move |ran_before: Option<()>| {
            // Read on every run, the first included, so a change reruns this.
            let html = text
                .with(|text| (ran_before.is_some() || !keep_first).then(|| markdown::render(text)));
            if let Some(html) = html {
                Rndr::set_inner_html(&target, &html);
            }
        });
        MarkdownHtmlState {
            element: element.clone(),
            _effect: effect,
        }
    }
}

/// What `view!` asks of an `inner_html=` value.
impl IntoAttributeValue for MarkdownHtml {
    type Output = Self;

    fn into_attribute_value(self) -> Self {
        self
    }
}

impl InnerHtmlValue for MarkdownHtml {
    type AsyncOutput = Self;
    type State = MarkdownHtmlState;
    type Cloneable = Self;
    type CloneableOwned = Self;

    fn html_len(&self) -> usize {
        self.0.with_untracked(String::len)
    }

    fn to_html(self, buf: &mut String) {
        buf.push_str(&self.0.with_untracked(|text| markdown::render(text)));
    }

    fn to_template(_buf: &mut String) {}

    /// From the server, the element already holds this text's HTML; from a
    /// template it does not.
    fn hydrate<const FROM_SERVER: bool>(self, element: &Element) -> Self::State {
        self.follow(element, FROM_SERVER)
    }

    fn build(self, element: &Element) -> Self::State {
        self.follow(element, false)
    }

    fn rebuild(self, state: &mut Self::State) {
        *state = self.follow(&state.element, false);
    }

    fn into_cloneable(self) -> Self::Cloneable {
        self
    }

    fn into_cloneable_owned(self) -> Self::CloneableOwned {
        self
    }

    fn dry_resolve(&mut self) {}

    async fn resolve(self) -> Self::AsyncOutput {
        self
    }
}
