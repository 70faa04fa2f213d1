//! The site's built assets, made ready to serve once per build by `keyward
//! prepare-assets` (`make build`, `run` and `test` run it after cargo-leptos):
//! published under the build's own directory, `pkg/v/<id>/`, which browsers
//! may cache for good (`version`), and compressed there with brotli and
//! gzip (`compress`).

pub mod compress;
pub mod inline_css;
mod published_file;
pub mod split_manifest;
pub mod version;

use std::path::Path;

pub use compress::Compressed;
pub use version::Published;

/// Publishes the build in `pkg` and compresses its copy (brotli at
/// `quality`, 0–11); returns what was compressed now.
pub fn prepare(pkg: &Path, quality: u32) -> std::io::Result<Published<Vec<Compressed>>> {
    version::publish(pkg, |copy| compress::precompress_dir(copy, quality))
}

/// The pkg path pages link their assets under: the current version's
/// directory (`pkg/v/<id>`), or `pkg` itself when no build was published
/// there (a plain `cargo leptos build`), whose files browsers revalidate.
pub fn linked_pkg_dir(site_root: &str, pkg_dir: &str) -> Option<String> {
    let id = version::current(&Path::new(site_root).join(pkg_dir))?;
    Some(format!("{pkg_dir}/{}/{id}", version::VERSIONS_DIR))
}
