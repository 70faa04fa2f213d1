//! Key vault: master keys that encrypt the Anthropic keys users save.

pub mod cipher;
mod master_key;

pub use cipher::{KeyOwner, SealedKey, VaultError};
pub use master_key::{load_or_create_master_key_file, MasterKey, MasterKeyError};

/// The master key that encrypts new rows, and older keys kept for decrypting
/// rows not yet rotated.
#[derive(Debug, Clone)]
pub struct Keyring {
    pub current: MasterKey,
    pub old: Vec<MasterKey>,
}

impl Keyring {
    /// The key that wrote a row, by the id stored next to the ciphertext.
    pub fn find(&self, key_id: &str) -> Option<&MasterKey> {
        std::iter::once(&self.current)
            .chain(&self.old)
            .find(|key| key.id() == key_id)
    }
}
