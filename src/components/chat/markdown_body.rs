//! A reply's body: its markdown, rendered to HTML and kept in step with the
//! text as it streams in.
//!
//! The server renders every stored reply into the page, and hydration keeps
//! that HTML: the browser renders markdown only for text it did not get
//! from the server (a reply streaming in, a conversation opened in the
//! tab). So the renderer (pulldown-cmark, its entity tables and the
//! highlighter: about a tenth of the wasm) is a chunk of its own, loaded
//! when the user first does something on the chat page, not a part of the
//! download every page waits for. Renders already made are kept, so a list
//! drawn again (a reply finished, a message edited) shows them at once
//! instead of waiting for a render.

use std::{cell::Cell, rc::Rc};

use leptos::{
    prelude::*,
    reactive::effect::RenderEffect,
    tachys::{
        html::{attribute::IntoAttributeValue, element::InnerHtmlValue},
        renderer::types::Element,
    },
};

/// The HTML of `text`, rendered as markdown, for an element's `inner_html`.
#[derive(Clone, Copy)]
pub struct MarkdownHtml(pub Signal<String>);

/// The element whose content the effect keeps rendered, the effect, and
/// the number of the element's newest text (a render that finishes after a
/// newer text arrived is not shown).
pub struct MarkdownHtmlState {
    element: Element,
    latest: Rc<Cell<u64>>,
    _effect: RenderEffect<()>,
}

impl MarkdownHtml {
    /// Shows the text's HTML in `element` now (unless `from_server`: the
    /// element already shows it) and again whenever the text changes.
    fn follow(
        self,
        element: &Element,
        from_server: bool,
        latest: Rc<Cell<u64>>,
    ) -> MarkdownHtmlState {
        let target = element.clone();
        let text = self.0;
        let newest = latest.clone();
        let effect = RenderEffect::new(move |ran_before: Option<()>| {
            // Read on every run, the first included, so a change reruns this.
            let text = text.get();
            if ran_before.is_none() && from_server {
                browser::remember(text, target.inner_html());
            } else {
                newest.set(newest.get() + 1);
                browser::show(&target, text, newest.clone());
            }
        });
        MarkdownHtmlState {
            element: element.clone(),
            latest,
            _effect: effect,
        }
    }
}

/// Loads the markdown renderer ahead of its first use, once, so the first
/// reply streams in without waiting for it.
pub fn load_renderer() {
    #[cfg(feature = "hydrate")]
    browser::load();
}

#[cfg(feature = "hydrate")]
mod browser {
    use std::{
        cell::{Cell, RefCell},
        collections::HashMap,
        rc::Rc,
    };

    use leptos::{
        tachys::renderer::{types::Element, Rndr},
        wasm_split::SplitLoaderError,
    };

    use crate::markdown;

    /// Renders kept at most; past that the oldest go all at once (a reply
    /// that streamed in leaves one per piece; only the last is worth
    /// keeping, and it is always the newest).
    const KEPT: usize = 64;

    thread_local! {
        /// Markdown text → its HTML, for the renders made so far.
        static RENDERED: RefCell<HashMap<String, String>> = RefCell::new(HashMap::new());
        static ASKED_FOR: Cell<bool> = const { Cell::new(false) };
    }

    pub fn load() {
        if !ASKED_FOR.replace(true) {
            // Rendering nothing fetches the renderer's chunk; if that
            // fails, the first render tries again.
            leptos::task::spawn_local(async {
                let _ = render_markdown(String::new()).await;
            });
        }
    }

    /// In a chunk of its own (`cargo leptos build --split`). Leptos's
    /// `#[lazy]` would abort the whole app when the chunk cannot be fetched
    /// (offline, say); this way a failed load is an error to handle.
    #[leptos::wasm_split::wasm_split(keyward_markdown_renderer, wasm_split_path = ::leptos::wasm_split, fallible)]
    fn render_markdown(text: String) -> Result<String, SplitLoaderError> {
        Ok(markdown::render(&text))
    }

    pub fn remember(text: String, html: String) {
        RENDERED.with_borrow_mut(|rendered| {
            if rendered.len() >= KEPT {
                rendered.clear();
            }
            rendered.insert(text, html);
        });
    }

    /// Shows `text` in `target`: at once when it was rendered before,
    /// otherwise once the renderer has it, unless a newer text (`latest`
    /// has moved on) came first.
    pub fn show(target: &Element, text: String, latest: Rc<Cell<u64>>) {
        if let Some(html) = RENDERED.with_borrow(|rendered| rendered.get(&text).cloned()) {
            Rndr::set_inner_html(target, &html);
            return;
        }
        let this = latest.get();
        let target = target.clone();
        leptos::task::spawn_local(async move {
            let html = render_markdown(text.clone()).await;
            if latest.get() != this {
                return;
            }
            match html {
                Ok(html) => {
                    Rndr::set_inner_html(&target, &html);
                    remember(text, html);
                }
                // The renderer could not be fetched: the reply is shown as
                // plain text rather than not at all (the next change tries
                // the fetch again).
                Err(_) => target.set_text_content(Some(&text)),
            }
        });
    }
}

/// Outside the browser nothing runs the effect above (the server renders
/// with `to_html`); this keeps the one build compiling.
#[cfg(not(feature = "hydrate"))]
mod browser {
    use std::{cell::Cell, rc::Rc};

    use leptos::tachys::renderer::{types::Element, Rndr};

    pub fn remember(_text: String, _html: String) {}

    pub fn show(target: &Element, text: String, _latest: Rc<Cell<u64>>) {
        Rndr::set_inner_html(target, &crate::markdown::render(&text));
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

    /// Only the server renders pages to HTML: in the browser build, this
    /// would put the renderer back into the main wasm for nothing.
    fn to_html(self, buf: &mut String) {
        #[cfg(not(feature = "hydrate"))]
        buf.push_str(&crate::markdown::render(&self.0.get_untracked()));
        #[cfg(feature = "hydrate")]
        let _ = (self, buf);
    }

    fn to_template(_buf: &mut String) {}

    /// From the server, the element already holds this text's HTML; from a
    /// template it does not.
    fn hydrate<const FROM_SERVER: bool>(self, element: &Element) -> Self::State {
        self.follow(element, FROM_SERVER, Rc::default())
    }

    fn build(self, element: &Element) -> Self::State {
        self.follow(element, false, Rc::default())
    }

    /// The element's count goes on, so a render the old text started is
    /// not shown over the new one.
    fn rebuild(self, state: &mut Self::State) {
        *state = self.follow(&state.element, false, state.latest.clone());
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
