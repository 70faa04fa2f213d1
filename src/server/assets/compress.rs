//! A build's assets compressed once, when it is published (`keyward
//! prepare-assets`), instead of on every request: `/pkg` serves
//! `keyward.wasm.br` (or `.gz`) to a browser that accepts it. Brotli at its
//! best quality makes the wasm about a fifth smaller than gzip, and costs
//! seconds — once, not per visitor. A build's directory is compressed
//! before it is put in place and never changes after, so a copy cannot go
//! stale.

use std::{
    fs,
    io::{self, Write},
    path::{Path, PathBuf},
    time::SystemTime,
};

/// What is worth compressing: text and wasm (images are compressed already).
const EXTENSIONS: [&str; 5] = ["wasm", "js", "css", "svg", "html"];
/// The two encodings browsers accept that `/pkg` serves precompressed.
const ENCODINGS: [&str; 2] = ["br", "gz"];
/// A copy being written, renamed into place when whole.
const PARTIAL: &str = "partial";

/// One asset and the sizes of its copies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Compressed {
    pub path: PathBuf,
    pub bytes: u64,
    pub brotli: u64,
    pub gzip: u64,
}

/// Writes a `.br` and a `.gz` beside every asset in `dir` that lacks a fresh
/// one; `quality` is brotli's (0–11: 11 for a release, less to be quick).
/// Returns what it compressed.
pub fn precompress_dir(dir: &Path, quality: u32) -> io::Result<Vec<Compressed>> {
    let mut done = Vec::new();
    for path in assets(dir)? {
        let modified = fs::metadata(&path)?.modified()?;
        if ENCODINGS
            .iter()
            .all(|encoding| is_fresh(&sibling(&path, encoding), modified))
        {
            continue;
        }
        let bytes = fs::read(&path)?;
        let brotli = write_atomically(&sibling(&path, "br"), &brotli(&bytes, quality)?)?;
        let gzip = write_atomically(&sibling(&path, "gz"), &gzip(&bytes)?)?;
        done.push(Compressed {
            path,
            bytes: bytes.len() as u64,
            brotli,
            gzip,
        });
    }
    Ok(done)
}

/// Whether `path` is made from an asset here (a compressed copy, or one
/// being written) rather than written by the build.
pub fn is_derived(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| ENCODINGS.contains(&e) || e == PARTIAL)
}

/// The assets under `dir`, subdirectories (wasm-bindgen's snippets)
/// included.
fn assets(dir: &Path) -> io::Result<Vec<PathBuf>> {
    let mut found = Vec::new();
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            found.extend(assets(&path)?);
            continue;
        }
        let wanted = path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| EXTENSIONS.contains(&e));
        if wanted {
            found.push(path);
        }
    }
    found.sort();
    Ok(found)
}

/// `keyward.wasm` → `keyward.wasm.br`.
fn sibling(path: &Path, encoding: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".");
    name.push(encoding);
    PathBuf::from(name)
}

/// Whether `copy` exists and is no older than its asset (`asset_modified`).
fn is_fresh(copy: &Path, asset_modified: SystemTime) -> bool {
    fs::metadata(copy)
        .and_then(|meta| meta.modified())
        .is_ok_and(|modified| modified >= asset_modified)
}

fn brotli(bytes: &[u8], quality: u32) -> io::Result<Vec<u8>> {
    let mut out = Vec::new();
    {
        let mut writer = brotli::CompressorWriter::new(&mut out, 64 * 1024, quality.min(11), 22);
        writer.write_all(bytes)?;
    }
    Ok(out)
}

fn gzip(bytes: &[u8]) -> io::Result<Vec<u8>> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    encoder.write_all(bytes)?;
    encoder.finish()
}

/// Writes through a temporary file and a rename, so a server never serves
/// half a copy; returns its size.
fn write_atomically(path: &Path, bytes: &[u8]) -> io::Result<u64> {
    let partial = sibling(path, PARTIAL);
    fs::write(&partial, bytes)?;
    fs::rename(&partial, path)?;
    Ok(bytes.len() as u64)
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;

    fn site() -> PathBuf {
        let dir = std::env::temp_dir().join(format!("keyward-pkg-{}", rand::random::<u64>()));
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn every_asset_gets_copies_that_decompress_to_it_and_is_compressed_once() {
        let dir = site();
        let wasm: Vec<u8> = (0..200_000u32)
            .flat_map(|i| (i % 251).to_le_bytes())
            .collect();
        fs::write(dir.join("keyward.wasm"), &wasm).unwrap();
        fs::write(
            dir.join("keyward.css"),
            "body { color: red; }\n".repeat(100),
        )
        .unwrap();
        fs::write(dir.join("notes.txt"), "not an asset").unwrap();
        fs::create_dir_all(dir.join("snippets/x")).unwrap();
        fs::write(dir.join("snippets/x/inline0.js"), "snippet();".repeat(100)).unwrap();

        let done = precompress_dir(&dir, 5).unwrap();
        assert_eq!(done.len(), 3, "{done:?}");
        assert!(dir.join("snippets/x/inline0.js.br").exists());
        let mut unbrotli = Vec::new();
        brotli::Decompressor::new(fs::File::open(dir.join("keyward.wasm.br")).unwrap(), 4096)
            .read_to_end(&mut unbrotli)
            .unwrap();
        assert_eq!(unbrotli, wasm);
        let mut ungzip = Vec::new();
        flate2::read::GzDecoder::new(fs::File::open(dir.join("keyward.wasm.gz")).unwrap())
            .read_to_end(&mut ungzip)
            .unwrap();
        assert_eq!(ungzip, wasm);
        assert!(!dir.join("notes.txt.br").exists());
        assert!(done.iter().all(|c| c.brotli < c.bytes && c.gzip < c.bytes));

        assert!(precompress_dir(&dir, 5).unwrap().is_empty(), "up to date");
        fs::remove_dir_all(dir).unwrap();
    }
}
