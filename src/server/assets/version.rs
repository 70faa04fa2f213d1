//! Each build's assets under a name of their own: `pkg/v/<id>/`, where the
//! id is a hash of every file the build wrote to `pkg`. Pages link the
//! current build's directory, so a browser may keep those files for a year
//! without asking again (`immutable`): a new build is a new address, and a
//! page can never be paired with another build's wasm.
//!
//! A directory rather than hashed file names: the wasm-bindgen glue, the
//! split loader and lazy chunks refer to each other by relative names,
//! which keep working unchanged inside one directory. Where a site is
//! published again in place (a deployed one), earlier builds are kept
//! (`KEEP` of them), so a tab opened before an upgrade still finds its own
//! files, lazy chunks included. (cargo-leptos empties the site root on
//! every build, so a build machine's site holds only its latest build.)

use std::{
    fs,
    io::{self, Read},
    path::{Path, PathBuf},
};

use sha2::{Digest, Sha256};

/// Where versions live, under the pkg directory.
pub const VERSIONS_DIR: &str = "v";
/// Names the version pages link to.
const CURRENT: &str = "current";
/// Held while a build is published.
const LOCK: &str = ".lock";
/// Versions kept, the current one included.
const KEEP: usize = 4;

/// The pkg directory's files (recursively, without earlier versions and
/// compressed copies), sorted by their path under `pkg`.
fn build_files(pkg: &Path) -> io::Result<Vec<PathBuf>> {
    fn walk(pkg: &Path, dir: &Path, found: &mut Vec<PathBuf>) -> io::Result<()> {
        for entry in fs::read_dir(dir)? {
            let path = entry?.path();
            let relative = path.strip_prefix(pkg).unwrap_or(&path).to_path_buf();
            if path.is_dir() {
                if relative != Path::new(VERSIONS_DIR) {
                    walk(pkg, &path, found)?;
                }
            } else if !super::compress::is_derived(&path) {
                found.push(relative);
            }
        }
        Ok(())
    }
    let mut found = Vec::new();
    walk(pkg, pkg, &mut found)?;
    found.sort();
    Ok(found)
}

/// The build's id: SHA-256 over every file's path and content, first 16
/// hex digits (a collision between two builds of one site is not a risk
/// worth more).
pub fn build_id(pkg: &Path) -> io::Result<String> {
    let mut hasher = Sha256::new();
    let mut buffer = vec![0; 64 * 1024];
    for relative in build_files(pkg)? {
        let name = relative.to_string_lossy();
        hasher.update((name.len() as u64).to_le_bytes());
        hasher.update(name.as_bytes());
        let mut file = fs::File::open(pkg.join(&relative))?;
        hasher.update(file.metadata()?.len().to_le_bytes());
        loop {
            let read = file.read(&mut buffer)?;
            if read == 0 {
                break;
            }
            hasher.update(&buffer[..read]);
        }
    }
    let digest = hasher.finalize();
    Ok(digest[..8].iter().map(|b| format!("{b:02x}")).collect())
}

/// A build published under its id.
#[derive(Debug)]
pub struct Published<T> {
    pub id: String,
    pub dir: PathBuf,
    /// What `prepare` returned.
    pub prepared: T,
    /// Whether the version was there already (copied by a deploy, or
    /// published before), checked whole.
    pub existed: bool,
}

/// Publishes the build in `pkg` as `pkg/v/<id>/` and makes it current.
///
/// One publisher at a time (a lock file in `pkg/v`). The build is copied to
/// a directory of this run's own, checked against the id, finished by
/// `prepare` (compressed) and only then renamed into place, so a version
/// directory is always whole. One that exists already is checked against
/// its id first (a deploy may have copied it, a kill may have cut it), and
/// replaced when it does not match; `prepare` then only completes it.
/// Finally the oldest versions beyond `KEEP` go.
pub fn publish<T>(
    pkg: &Path,
    prepare: impl Fn(&Path) -> io::Result<T>,
) -> io::Result<Published<T>> {
    let versions = pkg.join(VERSIONS_DIR);
    fs::create_dir_all(&versions)?;
    let lock = fs::File::create(versions.join(LOCK))?;
    lock.lock()?;
    remove_leftovers(&versions)?;

    let id = build_id(pkg)?;
    let dir = versions.join(&id);
    let existed = dir.is_dir() && build_id(&dir)? == id;
    let prepared = if existed {
        prepare(&dir)?
    } else {
        let copy = versions.join(format!(".{id}.{}.partial", std::process::id()));
        for relative in build_files(pkg)? {
            let to = copy.join(&relative);
            if let Some(parent) = to.parent() {
                fs::create_dir_all(parent)?;
            }
            fs::copy(pkg.join(&relative), to)?;
        }
        if build_id(&copy)? != id {
            fs::remove_dir_all(&copy)?;
            return Err(io::Error::other(
                "the build changed while it was being published; run again once it is done",
            ));
        }
        let prepared = prepare(&copy)?;
        if dir.exists() {
            remove_version(&dir)?;
        }
        fs::rename(&copy, &dir)?;
        prepared
    };
    // Newest first by when each was made current.
    touch(&dir)?;
    let pointer = versions.join(format!(".{CURRENT}.partial"));
    fs::write(&pointer, &id)?;
    fs::rename(&pointer, versions.join(CURRENT))?;
    prune(&versions, &id)?;
    Ok(Published {
        id,
        dir,
        prepared,
        existed,
    })
}

/// The current version's id, when one was published and is still there.
pub fn current(pkg: &Path) -> Option<String> {
    let id = fs::read_to_string(pkg.join(VERSIONS_DIR).join(CURRENT)).ok()?;
    let id = id.trim();
    let plausible = !id.is_empty() && id.chars().all(|c| c.is_ascii_hexdigit());
    (plausible && pkg.join(VERSIONS_DIR).join(id).is_dir()).then(|| id.to_owned())
}

/// Marks a directory as just used, by its modification time.
fn touch(dir: &Path) -> io::Result<()> {
    fs::File::open(dir)?.set_modified(std::time::SystemTime::now())
}

/// Keeps the `KEEP` most recently published versions, the current one
/// always.
fn prune(versions: &Path, current: &str) -> io::Result<()> {
    let mut older = Vec::new();
    for entry in fs::read_dir(versions)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') || name == current || !entry.path().is_dir() {
            continue;
        }
        older.push((entry.metadata()?.modified()?, entry.path()));
    }
    older.sort_by_key(|(modified, _)| std::cmp::Reverse(*modified));
    for (_, dir) in older.into_iter().skip(KEEP - 1) {
        remove_version(&dir)?;
    }
    Ok(())
}

/// Takes a version out of reach (renamed to a hidden name) before deleting
/// it: a deletion cut short never leaves a partial version under its id.
fn remove_version(dir: &Path) -> io::Result<()> {
    let name = dir.file_name().unwrap_or_default().to_string_lossy();
    let doomed = dir.with_file_name(format!(".{name}.{}.removed", std::process::id()));
    fs::rename(dir, &doomed)?;
    fs::remove_dir_all(doomed)
}

/// Copies and deletions an earlier run left when it was killed (no other
/// run is under way: the caller holds the lock).
fn remove_leftovers(versions: &Path) -> io::Result<()> {
    for entry in fs::read_dir(versions)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') && entry.path().is_dir() {
            fs::remove_dir_all(entry.path())?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nothing(_: &Path) -> io::Result<()> {
        Ok(())
    }

    fn pkg() -> PathBuf {
        let dir = std::env::temp_dir().join(format!("keyward-versions-{}", rand::random::<u64>()));
        fs::create_dir_all(dir.join("snippets/x")).unwrap();
        fs::write(dir.join("keyward.wasm"), b"\0asm build one").unwrap();
        fs::write(dir.join("keyward.js"), b"glue();").unwrap();
        fs::write(dir.join("snippets/x/inline0.js"), b"snippet();").unwrap();
        dir
    }

    #[test]
    fn a_build_is_copied_whole_under_its_id_and_made_current() {
        let pkg = pkg();
        fs::write(pkg.join("keyward.wasm.br"), b"derived").unwrap();
        // A run killed earlier left a copy behind.
        fs::create_dir_all(pkg.join("v/.0123.99.partial")).unwrap();
        // `prepare` finishes the copy before it is in place.
        let prepare = |copy: &Path| {
            let name = copy.file_name().unwrap().to_string_lossy().into_owned();
            assert!(
                name.starts_with('.') && name.ends_with(".partial"),
                "{name}"
            );
            fs::write(copy.join("keyward.wasm.br"), b"compressed")
        };
        let Published {
            id, dir, existed, ..
        } = publish(&pkg, prepare).unwrap();
        assert!(!existed);
        assert_eq!(id.len(), 16);
        assert_eq!(
            fs::read(dir.join("keyward.wasm.br")).unwrap(),
            b"compressed"
        );
        assert!(
            !pkg.join("v/.0123.99.partial").exists(),
            "leftovers are removed"
        );
        assert_eq!(current(&pkg).as_deref(), Some(id.as_str()));
        assert_eq!(
            fs::read(dir.join("keyward.wasm")).unwrap(),
            b"\0asm build one"
        );
        assert_eq!(
            fs::read(dir.join("snippets/x/inline0.js")).unwrap(),
            b"snippet();"
        );
        assert!(!dir.join(VERSIONS_DIR).exists(), "versions do not nest");

        // Published again unchanged: the same id, found whole in place.
        let again = publish(&pkg, nothing).unwrap();
        assert_eq!((again.id, again.existed), (id, true));
        fs::remove_dir_all(pkg).unwrap();
    }

    #[test]
    fn a_version_cut_short_is_replaced_whole() {
        let pkg = pkg();
        let first = publish(&pkg, nothing).unwrap();
        // A deploy's copy (or a kill) left the wasm half written.
        fs::write(first.dir.join("keyward.wasm"), b"\0as").unwrap();
        let again = publish(&pkg, nothing).unwrap();
        assert_eq!(again.id, first.id);
        assert!(!again.existed);
        assert_eq!(
            fs::read(again.dir.join("keyward.wasm")).unwrap(),
            b"\0asm build one"
        );
        fs::remove_dir_all(pkg).unwrap();
    }

    #[test]
    fn a_changed_build_gets_a_new_id_and_the_old_one_stays_for_open_tabs() {
        let pkg = pkg();
        let first = publish(&pkg, nothing).unwrap();
        let (first, first_dir) = (first.id, first.dir);
        fs::write(pkg.join("keyward.wasm"), b"\0asm build two").unwrap();
        let second = publish(&pkg, nothing).unwrap().id;
        assert_ne!(first, second);
        assert_eq!(current(&pkg).as_deref(), Some(second.as_str()));
        assert_eq!(
            fs::read(first_dir.join("keyward.wasm")).unwrap(),
            b"\0asm build one"
        );

        // Only KEEP versions stay: the oldest go first.
        for n in 3..=6 {
            fs::write(pkg.join("keyward.wasm"), format!("\0asm build {n}")).unwrap();
            publish(&pkg, nothing).unwrap();
        }
        let kept = fs::read_dir(pkg.join(VERSIONS_DIR))
            .unwrap()
            .filter(|e| e.as_ref().unwrap().path().is_dir())
            .count();
        assert_eq!(kept, KEEP);
        assert!(!first_dir.exists());
        fs::remove_dir_all(pkg).unwrap();
    }

    #[test]
    fn a_missing_or_odd_pointer_is_no_version() {
        let pkg = pkg();
        assert_eq!(current(&pkg), None);
        fs::create_dir_all(pkg.join(VERSIONS_DIR)).unwrap();
        fs::write(pkg.join(VERSIONS_DIR).join(CURRENT), "../../etc").unwrap();
        assert_eq!(current(&pkg), None);
        fs::write(pkg.join(VERSIONS_DIR).join(CURRENT), "00ff00ff00ff00ff").unwrap();
        assert_eq!(current(&pkg), None, "names a version that is gone");
        fs::remove_dir_all(pkg).unwrap();
    }
}
