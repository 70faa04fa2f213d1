//! Master keys (key-encryption keys). They live outside the database: in
//! `KEYWARD_MASTER_KEY`, in `KEYWARD_MASTER_KEY_FILE`, or in a generated
//! `data/master.key` (mode 0600).

use std::{fmt, io::Write, path::Path};

use base64::{engine::general_purpose::STANDARD, Engine as _};
use rand::RngCore;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

/// A 256-bit master key and its public id (first 8 bytes of SHA-256, hex).
#[derive(Clone)]
pub struct MasterKey {
    id: String,
    bytes: Zeroizing<[u8; 32]>,
}

#[derive(Debug, thiserror::Error)]
pub enum MasterKeyError {
    #[error("master key is not valid base64")]
    NotBase64,
    #[error("master key must be exactly 32 bytes, got {0}")]
    WrongLength(usize),
    #[error("{name}: {source}")]
    Invalid {
        name: &'static str,
        source: Box<MasterKeyError>,
    },
    #[error("cannot read or write master key file {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error(
        "master key file {path} can be read or changed by other users (mode {mode:o}); \
         allow only its owner (and at most its group to read): chmod 600 {path} \
         (a Kubernetes secret: defaultMode 0400)"
    )]
    Exposed { path: String, mode: u32 },
}

impl MasterKey {
    pub fn from_base64(text: &str) -> Result<Self, MasterKeyError> {
        let decoded = Zeroizing::new(
            STANDARD
                .decode(text.trim())
                .map_err(|_| MasterKeyError::NotBase64)?,
        );
        let bytes: [u8; 32] = decoded
            .as_slice()
            .try_into()
            .map_err(|_| MasterKeyError::WrongLength(decoded.len()))?;
        Ok(Self::from_bytes(bytes))
    }

    pub fn generate() -> Self {
        let mut bytes = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        Self::from_bytes(bytes)
    }

    fn from_bytes(bytes: [u8; 32]) -> Self {
        let digest = Sha256::digest(bytes);
        let id = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
        Self {
            id,
            bytes: Zeroizing::new(bytes),
        }
    }

    /// Public identifier stored next to each ciphertext; reveals nothing about the key.
    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn bytes(&self) -> &[u8; 32] {
        &self.bytes
    }

    /// Base64 form, for `keyward gen-master-key` and the generated key file.
    pub fn to_base64(&self) -> Zeroizing<String> {
        Zeroizing::new(STANDARD.encode(self.bytes.as_slice()))
    }

    /// Reads the key from `path`, refusing a file every user on the machine
    /// may read, or anyone but its owner may change.
    pub fn read_file(path: &Path) -> Result<Self, MasterKeyError> {
        check_permissions(path)?;
        let text =
            Zeroizing::new(
                std::fs::read_to_string(path).map_err(|source| MasterKeyError::Io {
                    path: path.display().to_string(),
                    source,
                })?,
            );
        Self::from_base64(&text)
    }
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MasterKey")
            .field("id", &self.id)
            .field("bytes", &"[REDACTED]")
            .finish()
    }
}

#[cfg(unix)]
fn check_permissions(path: &Path) -> Result<(), MasterKeyError> {
    use std::os::unix::fs::PermissionsExt;
    let metadata = std::fs::metadata(path).map_err(|source| MasterKeyError::Io {
        path: path.display().to_string(),
        source,
    })?;
    let mode = metadata.permissions().mode() & 0o777;
    // Others may not read; nobody but the owner may write.
    if mode & 0o026 != 0 {
        return Err(MasterKeyError::Exposed {
            path: path.display().to_string(),
            mode,
        });
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_permissions(_path: &Path) -> Result<(), MasterKeyError> {
    Ok(())
}

/// Reads `path`, or creates it with a fresh key (mode 0600) when it does not exist.
/// Returns the key and whether it was just created.
pub fn load_or_create_master_key_file(path: &Path) -> Result<(MasterKey, bool), MasterKeyError> {
    if path.exists() {
        return MasterKey::read_file(path).map(|key| (key, false));
    }
    let io_err = |source| MasterKeyError::Io {
        path: path.display().to_string(),
        source,
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io_err)?;
    }
    let key = MasterKey::generate();
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path).map_err(io_err)?;
    file.write_all(key.to_base64().as_bytes()).map_err(io_err)?;
    file.write_all(b"\n").map_err(io_err)?;
    Ok((key, true))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_wrong_length_and_bad_base64() {
        assert!(matches!(
            MasterKey::from_base64(&STANDARD.encode([1u8; 16])),
            Err(MasterKeyError::WrongLength(16))
        ));
        assert!(matches!(
            MasterKey::from_base64("not base64!"),
            Err(MasterKeyError::NotBase64)
        ));
    }

    #[cfg(unix)]
    #[test]
    fn a_key_file_others_can_read_or_change_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("keyward-key-{}", rand::random::<u64>()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("master.key");
        std::fs::write(&path, MasterKey::generate().to_base64()).unwrap();
        for (mode, allowed) in [
            (0o600, true),
            (0o400, true),
            (0o640, true),
            (0o644, false),
            (0o660, false),
            (0o604, false),
        ] {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
            let read = MasterKey::read_file(&path);
            assert_eq!(read.is_ok(), allowed, "mode {mode:o}: {read:?}");
            if !allowed {
                let message = read.unwrap_err().to_string();
                assert!(message.contains("chmod 600"), "{message}");
            }
        }
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn base64_round_trip_keeps_id() {
        let key = MasterKey::generate();
        let again = MasterKey::from_base64(&key.to_base64()).unwrap();
        assert_eq!(key.id(), again.id());
        assert_eq!(key.id().len(), 16);
    }

    #[test]
    fn debug_never_prints_key_material() {
        let key = MasterKey::generate();
        let printed = format!("{key:?}");
        assert!(printed.contains("[REDACTED]"));
        assert!(!printed.contains(key.to_base64().as_str()));
    }

    #[test]
    fn generated_file_is_private_and_reloads() {
        let dir = std::env::temp_dir().join(format!("kw-mk-{}", rand::random::<u64>()));
        let path = dir.join("master.key");
        let (created, fresh) = load_or_create_master_key_file(&path).unwrap();
        assert!(fresh);
        let (loaded, fresh) = load_or_create_master_key_file(&path).unwrap();
        assert!(!fresh);
        assert_eq!(created.id(), loaded.id());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        std::fs::remove_dir_all(dir).unwrap();
    }
}
