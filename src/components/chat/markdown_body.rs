//! A reply's body: its markdown, rendered to HTML and kept in step with the
//! text as it streams in.
//!
//! The server renders every stored reply into the page, and hydration keeps
//! that HTML: the browser renders markdown only for text it did not get
//! from the server (a reply streaming in, a conversation opened in the
//! tab). So the renderer (pulldown-cmark, its entity tables and the
//! highlighter: about a sixth of the wasm) is a chunk of its own, loaded
//! when the user first does something on the chat page, not a part of the
//! download every page waits for. Until it is there, text the browser has
//! to render is shown as written; renders already made are kept, so a list
//! drawn again (a reply finished, another conversation opened) shows them
//! at once.

use std::rc::Rc;

use leptos::{
    prelude::*,
    reactive::effect::RenderEffect,
    tachys::{
        html::{attribute::IntoAttributeValue, element::InnerHtmlValue},
        renderer::types::Element,
    },
};

use browser::Body;

/// The HTML of `text`, rendered as markdown, for an element's `inner_html`.
#[derive(Clone, Copy)]
pub struct MarkdownHtml(pub Signal<String>);

/// The element's body (what it shows, what it waits to show) and the
/// effect that keeps it in step with the text.
pub struct MarkdownHtmlState {
    body: Rc<Body>,
    _effect: RenderEffect<()>,
}

impl MarkdownHtml {
    /// Shows the text in `body` now (unless `from_server`: the element
    /// already shows it) and again whenever the text changes.
    fn follow(self, body: Rc<Body>, from_server: bool) -> MarkdownHtmlState {
        let shown = body.clone();
        let effect = RenderEffect::new(move |ran_before: Option<()>| {
            // Read on every run, the first included, so a change reruns this.
            self.0.with(|text| {
                if ran_before.is_none() && from_server {
                    shown.rendered_by_server(text);
                } else {
                    shown.show(text);
                }
            });
        });
        MarkdownHtmlState {
            body,
            _effect: effect,
        }
    }
}

/// Loads the markdown renderer ahead of its first use, so the first reply
/// streams in without waiting for it; after a failed load, tries again.
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

    /// Renders kept at most (one per reply in the tab, in practice); past
    /// that they all go at once.
    const KEPT: usize = 256;

    /// How far the renderer's chunk has come.
    #[derive(Clone, Copy, PartialEq)]
    enum Renderer {
        NotAskedFor,
        Loading,
        Loaded,
        /// The fetch failed: text is shown as written until the user's
        /// next touch or focus tries again.
        Failed,
    }

    thread_local! {
        /// Markdown text → its HTML, for the renders made so far.
        static RENDERED: RefCell<HashMap<String, String>> = RefCell::new(HashMap::new());
        static RENDERER: Cell<Renderer> = const { Cell::new(Renderer::NotAskedFor) };
        /// Bodies waiting for the renderer, shown as written meanwhile.
        static WAITING: RefCell<Vec<Rc<Body>>> = const { RefCell::new(Vec::new()) };
    }

    /// In a chunk of its own (`cargo leptos build --split`). Leptos's
    /// `#[lazy]` would abort the whole app when the chunk cannot be fetched
    /// (offline, say); `fallible` makes that an error to handle.
    #[leptos::wasm_split::wasm_split(
        keyward_markdown_renderer,
        wasm_split_path = ::leptos::wasm_split,
        preload(fetch_renderer),
        fallible
    )]
    fn render_markdown(text: String) -> Result<String, SplitLoaderError> {
        Ok(markdown::render(&text))
    }

    /// The user touched or focused the page: fetch the renderer, again if
    /// it failed before.
    pub fn load() {
        start(true);
    }

    fn start(retry_failed: bool) {
        match RENDERER.get() {
            Renderer::NotAskedFor => {}
            Renderer::Failed if retry_failed => {}
            Renderer::Loaded => {
                render_all_waiting();
                return;
            }
            Renderer::Failed | Renderer::Loading => return,
        }
        RENDERER.set(Renderer::Loading);
        leptos::task::spawn_local(async {
            if fetch_renderer().await.is_ok() {
                RENDERER.set(Renderer::Loaded);
                render_all_waiting();
            } else {
                RENDERER.set(Renderer::Failed);
            }
        });
    }

    /// Everything that waited gets its newest text rendered.
    fn render_all_waiting() {
        for body in WAITING.take() {
            body.render_waiting();
        }
    }

    /// One element showing a reply's body.
    pub struct Body {
        target: Element,
        /// The text whose markdown the element shows now, if it does.
        rendered: RefCell<Option<String>>,
        /// The newest text, shown as written until the renderer is here.
        waiting: RefCell<Option<String>>,
        queued: Cell<bool>,
        /// The render this body last kept: a reply streaming in keeps only
        /// its newest, not one per piece.
        kept: RefCell<Option<String>>,
    }

    impl Body {
        pub fn new(target: &Element) -> Rc<Self> {
            Rc::new(Self {
                target: target.clone(),
                rendered: RefCell::new(None),
                waiting: RefCell::new(None),
                queued: Cell::new(false),
                kept: RefCell::new(None),
            })
        }

        /// The element holds the server's rendering of `text`: kept, and
        /// remembered for a list drawn again.
        pub fn rendered_by_server(&self, text: &str) {
            let html = self.target.inner_html();
            // An element emptied before hydration is nothing to reuse.
            if !html.is_empty() || text.is_empty() {
                self.keep(text, html);
            }
            *self.rendered.borrow_mut() = Some(text.to_owned());
        }

        /// Shows `text`: rendered when it was before or the renderer is
        /// here, otherwise as written until the renderer arrives.
        pub fn show(self: &Rc<Self>, text: &str) {
            if self.rendered.borrow().as_deref() == Some(text) {
                self.waiting.take();
                return;
            }
            let kept = RENDERED.with_borrow(|rendered| rendered.get(text).cloned());
            if let Some(html) = kept {
                self.set_rendered(text, &html);
                return;
            }
            if RENDERER.get() == Renderer::Loaded {
                if let Some(html) = render_now(text) {
                    self.set_rendered(text, &html);
                    self.keep(text, html);
                    return;
                }
            }
            self.target.set_text_content(Some(text));
            self.rendered.take();
            *self.waiting.borrow_mut() = Some(text.to_owned());
            if !self.queued.replace(true) {
                WAITING.with_borrow_mut(|waiting| waiting.push(self.clone()));
            }
            start(false);
        }

        /// Called once the renderer is loaded.
        fn render_waiting(&self) {
            self.queued.set(false);
            let Some(text) = self.waiting.take() else {
                return;
            };
            if let Some(html) = render_now(&text) {
                self.set_rendered(&text, &html);
                self.keep(&text, html);
            }
        }

        fn keep(&self, text: &str, html: String) {
            RENDERED.with_borrow_mut(|rendered| {
                if let Some(older) = self.kept.replace(Some(text.to_owned())) {
                    if older != text {
                        rendered.remove(&older);
                    }
                }
                if rendered.len() >= KEPT {
                    rendered.clear();
                }
                rendered.insert(text.to_owned(), html);
            });
        }

        fn set_rendered(&self, text: &str, html: &str) {
            Rndr::set_inner_html(&self.target, html);
            *self.rendered.borrow_mut() = Some(text.to_owned());
            self.waiting.take();
        }
    }

    /// Renders with the loaded chunk, in this task: the call resolves at
    /// once when its module is there.
    fn render_now(text: &str) -> Option<String> {
        use std::{
            future::Future,
            pin::pin,
            task::{Context, Poll, Waker},
        };
        let mut rendering = pin!(render_markdown(text.to_owned()));
        match rendering
            .as_mut()
            .poll(&mut Context::from_waker(Waker::noop()))
        {
            Poll::Ready(Ok(html)) => Some(html),
            _ => None,
        }
    }
}

/// Outside the browser nothing runs the effect above (the server renders
/// with `to_html`); this keeps the one build compiling.
#[cfg(not(feature = "hydrate"))]
mod browser {
    use std::rc::Rc;

    use leptos::tachys::renderer::{types::Element, Rndr};

    pub struct Body(Element);

    impl Body {
        pub fn new(target: &Element) -> Rc<Self> {
            Rc::new(Self(target.clone()))
        }

        pub fn rendered_by_server(&self, _text: &str) {}

        pub fn show(self: &Rc<Self>, text: &str) {
            Rndr::set_inner_html(&self.0, &crate::markdown::render(text));
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

    /// The server's: the browser build has no use for it, and would keep
    /// the renderer in the main wasm for it.
    fn to_html(self, buf: &mut String) {
        #[cfg(feature = "ssr")]
        self.0
            .with_untracked(|text| buf.push_str(&crate::markdown::render(text)));
        #[cfg(not(feature = "ssr"))]
        let _ = (self, buf);
    }

    fn to_template(_buf: &mut String) {}

    /// From the server, the element already holds this text's HTML; from a
    /// template it does not.
    fn hydrate<const FROM_SERVER: bool>(self, element: &Element) -> Self::State {
        self.follow(Body::new(element), FROM_SERVER)
    }

    fn build(self, element: &Element) -> Self::State {
        self.follow(Body::new(element), false)
    }

    /// The same element, so the same body: what it shows and waits for
    /// carries over to the new text.
    fn rebuild(self, state: &mut Self::State) {
        *state = self.follow(state.body.clone(), false);
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
