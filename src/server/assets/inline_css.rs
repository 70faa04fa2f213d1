//! The current build's stylesheet, inlined into every page's head (with
//! the response's CSP nonce) instead of linked: the first paint waits for
//! no request, which on a slow phone connection is a round trip or more.
//! It costs each page about 3 KB compressed; pages are never cached, and
//! navigating inside the app fetches no page at all.
//!
//! Only a published build's stylesheet is inlined: its file never changes
//! under its path, so it is read once per process.

use std::sync::Arc;

use leptos::config::LeptosOptions;

use super::published_file::PublishedFiles;

/// The stylesheet of the build pages link, when that is a published one
/// (`pkg/v/<id>`) and its file is there.
pub fn of_build(options: &LeptosOptions) -> Option<Arc<str>> {
    static READ: PublishedFiles<Arc<str>> = PublishedFiles::new();
    READ.read(options, &format!("{}.css", options.output_name), |css| {
        // Inside <style> nothing is escaped: text that would close the element
        // is linked instead (never in our own stylesheet).
        (!css.to_ascii_lowercase().contains("</style")).then(|| css.into())
    })
}
