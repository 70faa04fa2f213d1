//! Files of a published build (`pkg/v/<id>`) that pages are made from, read
//! once per process: such a file never changes under its path.

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    sync::{OnceLock, RwLock},
};

use leptos::config::LeptosOptions;

/// What was read of each published file, by path; `None` for one that is
/// not there or was refused, so a build without it costs no disk read per
/// page either.
pub struct PublishedFiles<T> {
    read: OnceLock<RwLock<HashMap<PathBuf, Option<T>>>>,
}

impl<T: Clone> PublishedFiles<T> {
    pub const fn new() -> Self {
        Self {
            read: OnceLock::new(),
        }
    }

    /// `file` of the build pages link, made into a `T` by `parse`; `None`
    /// when that build is not a published one, the file is not there or
    /// `parse` refuses it.
    pub fn read(
        &self,
        options: &LeptosOptions,
        file: &str,
        parse: impl FnOnce(String) -> Option<T>,
    ) -> Option<T> {
        let published = format!("/{}/", super::version::VERSIONS_DIR);
        if !options.site_pkg_dir.contains(&published) {
            return None;
        }
        let path = Path::new(&*options.site_root)
            .join(&*options.site_pkg_dir)
            .join(file);
        let read = self.read.get_or_init(RwLock::default);
        if let Some(known) = read.read().ok()?.get(&path) {
            return known.clone();
        }
        let parsed = std::fs::read_to_string(&path).ok().and_then(parse);
        read.write().ok()?.insert(path, parsed.clone());
        parsed
    }
}
