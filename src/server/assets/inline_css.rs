//! The current build's stylesheet, inlined into every page's head (with
//! the response's CSP nonce) instead of linked: the first paint waits for
//! no request, which on a slow phone connection is a round trip or more.
//! It costs each page about 3 KB compressed; pages are never cached, and
//! navigating inside the app fetches no page at all.
//!
//! Only a published build's stylesheet is inlined: its file never changes
//! under its path, so it is read once per process.

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    sync::{Arc, OnceLock, RwLock},
};

use leptos::config::LeptosOptions;

/// The stylesheet of the build pages link, when that is a published one
/// (`pkg/v/<id>`) and its file is there.
pub fn of_build(options: &LeptosOptions) -> Option<Arc<str>> {
    static READ: OnceLock<RwLock<HashMap<PathBuf, Arc<str>>>> = OnceLock::new();
    let published = format!("/{}/", super::version::VERSIONS_DIR);
    if !options.site_pkg_dir.contains(&published) {
        return None;
    }
    let path = Path::new(&*options.site_root)
        .join(&*options.site_pkg_dir)
        .join(format!("{}.css", options.output_name));
    let read = READ.get_or_init(RwLock::default);
    if let Some(css) = read.read().ok()?.get(&path) {
        return Some(css.clone());
    }
    let css = std::fs::read_to_string(&path).ok()?;
    // Inside <style> nothing is escaped: text that would close the element
    // is linked instead (never in our own stylesheet).
    if css.to_ascii_lowercase().contains("</style") {
        return None;
    }
    let css: Arc<str> = css.into();
    read.write().ok()?.insert(path, css.clone());
    Some(css)
}
