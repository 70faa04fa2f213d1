//! Which wasm chunks each lazily loaded page needs: `cargo leptos build
//! --split` writes them to `__wasm_split_manifest.json`, keyed by the name
//! the page's lazy function registers when the server renders it.

use std::{collections::HashMap, sync::Arc};

use leptos::config::LeptosOptions;

use super::published_file::PublishedFiles;

const MANIFEST: &str = "__wasm_split_manifest.json";

type Manifest = Arc<HashMap<String, Vec<String>>>;

/// The chunk files (`chunk_7.wasm`, …) the lazy functions named in `keys`
/// need, each once, in a stable order; none when the build pages link is
/// not a published, split one.
pub fn chunk_files<'a>(
    options: &LeptosOptions,
    keys: impl IntoIterator<Item = &'a str>,
) -> Vec<String> {
    static READ: PublishedFiles<Manifest> = PublishedFiles::new();
    let Some(manifest) = READ.read(options, MANIFEST, |json| {
        serde_json::from_str(&json).ok().map(Arc::new)
    }) else {
        return Vec::new();
    };
    let mut files: Vec<String> = keys
        .into_iter()
        .filter_map(|key| manifest.get(key))
        .flatten()
        .map(|module| format!("{module}.wasm"))
        .collect();
    files.sort();
    files.dedup();
    files
}
