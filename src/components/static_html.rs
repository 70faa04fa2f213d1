//! Markup with nothing live in it (no handlers, no signals), which
//! hydration leaves as the server sent it.
//!
//! The browser compiles each wasm function the first time it runs, on the
//! main thread, so hydrating a chart of a hundred SVG nodes meant compiling
//! the code that draws it (float formatting included) only to find what the
//! server had drawn already. As an element's `inner_html`, the same view is
//! rendered by the server and skipped by hydration; the browser draws it
//! only for an element it builds itself (another period picked in the tab).
//! Escaping is the view's own: text and attribute values are escaped by
//! `to_html` as anywhere else.

use std::{any::Any, sync::Arc};

use leptos::{
    prelude::*,
    tachys::{
        html::{attribute::IntoAttributeValue, element::InnerHtmlValue},
        renderer::types::Element,
    },
};

/// A view, drawn when (and only when) an element needs it: to HTML on the
/// server, into the element in the browser.
#[derive(Clone)]
pub struct StaticHtml {
    #[cfg(feature = "ssr")]
    html: Arc<dyn Fn() -> String + Send + Sync>,
    #[cfg(not(feature = "ssr"))]
    draw: Arc<dyn Fn(&Element) -> Drawn + Send + Sync>,
}

/// What the browser drew into an element (kept while the element shows it).
pub struct Drawn(#[allow(dead_code)] Option<Box<dyn Any>>);

impl StaticHtml {
    /// `draw` makes the view. It must not read signals or attach handlers:
    /// they would work where the browser drew the view itself, and never on
    /// a page it hydrated.
    pub fn new<V: RenderHtml + Send + 'static>(
        draw: impl Fn() -> V + Send + Sync + 'static,
    ) -> Self {
        #[cfg(feature = "ssr")]
        return Self {
            html: Arc::new(move || draw().to_html()),
        };
        #[cfg(not(feature = "ssr"))]
        Self {
            draw: Arc::new(move |element: &Element| {
                use leptos::tachys::{renderer::Rndr, view::Mountable};
                Rndr::set_inner_html(element, "");
                let mut view = draw().into_any().build();
                view.mount(element, None);
                Drawn(Some(Box::new(view)))
            }),
        }
    }

    fn draw_into(&self, element: &Element) -> Drawn {
        #[cfg(not(feature = "ssr"))]
        return (self.draw)(element);
        #[cfg(feature = "ssr")]
        {
            // The server only renders to HTML (`to_html`).
            let _ = element;
            Drawn(None)
        }
    }
}

impl IntoAttributeValue for StaticHtml {
    type Output = Self;

    fn into_attribute_value(self) -> Self {
        self
    }
}

impl InnerHtmlValue for StaticHtml {
    type AsyncOutput = Self;
    /// The element, to draw into again when the value changes, and what is
    /// drawn there now.
    type State = (Element, Drawn);
    type Cloneable = Self;
    type CloneableOwned = Self;

    fn html_len(&self) -> usize {
        0
    }

    fn to_html(self, buf: &mut String) {
        #[cfg(feature = "ssr")]
        buf.push_str(&(self.html)());
        #[cfg(not(feature = "ssr"))]
        let _ = buf;
    }

    fn to_template(_buf: &mut String) {}

    /// From the server, the element holds the markup already.
    fn hydrate<const FROM_SERVER: bool>(self, element: &Element) -> Self::State {
        let drawn = if FROM_SERVER {
            Drawn(None)
        } else {
            self.draw_into(element)
        };
        (element.clone(), drawn)
    }

    fn build(self, element: &Element) -> Self::State {
        (element.clone(), self.draw_into(element))
    }

    fn rebuild(self, state: &mut Self::State) {
        state.1 = self.draw_into(&state.0);
    }

    fn into_cloneable(self) -> Self {
        self
    }

    fn into_cloneable_owned(self) -> Self {
        self
    }

    fn dry_resolve(&mut self) {}

    async fn resolve(self) -> Self {
        self
    }
}

/// The server's half (the browser's is in the admin's browser test).
#[cfg(all(test, feature = "ssr"))]
mod tests {
    use super::*;

    #[test]
    fn text_and_attributes_are_escaped_as_in_any_view() {
        let name = "<script>alert(1)</script>\" onmouseover=\"x";
        let html = StaticHtml::new(move || {
            view! { <text data-model=name.to_owned()>{name.to_owned()}</text> }
        });
        let mut buf = String::new();
        html.to_html(&mut buf);
        assert!(!buf.contains("<script>"), "{buf}");
        // Quotes matter in the attribute only: there they cannot end it.
        assert!(
            buf.starts_with(
                "<text data-model=\"&lt;script&gt;alert(1)&lt;/script&gt;&quot; onmouseover=&quot;x\">&lt;script&gt;"
            ),
            "{buf}"
        );
    }

    #[test]
    fn drawn_again_for_each_element_that_needs_it() {
        let html = StaticHtml::new(|| view! { <rect width="1" /> });
        let (mut first, mut second) = (String::new(), String::new());
        html.clone().to_html(&mut first);
        html.to_html(&mut second);
        assert_eq!(first, second);
        assert!(first.starts_with("<rect"), "{first}");
    }
}
