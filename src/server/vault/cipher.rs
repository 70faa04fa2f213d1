//! AES-256-GCM sealing of users' API keys.
//!
//! Each encryption draws a fresh 96-bit nonce from the OS RNG. The associated
//! data binds the ciphertext to its owner, its provider and the master key
//! that wrote it, so a ciphertext copied to another row or user, or relabelled
//! with another master key id, fails to open.

use aes_gcm::{
    aead::{Aead, KeyInit, Payload},
    Aes256Gcm, Nonce,
};
use rand::RngCore;
use secrecy::{ExposeSecret, SecretString};
use zeroize::Zeroizing;

use super::{Keyring, MasterKey};

pub const NONCE_LEN: usize = 12;

/// A key as stored: ciphertext (with the GCM tag), nonce and master key id.
#[derive(Clone, PartialEq, Eq)]
pub struct SealedKey {
    pub ciphertext: Vec<u8>,
    pub nonce: Vec<u8>,
    pub master_key_id: String,
}

impl std::fmt::Debug for SealedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SealedKey")
            .field("ciphertext_len", &self.ciphertext.len())
            .field("master_key_id", &self.master_key_id)
            .finish()
    }
}

/// Whose key this is and for what; becomes the AAD.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyOwner<'a> {
    pub user_id: i64,
    pub provider: &'a str,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VaultError {
    #[error("the key was encrypted with master key {0}, which is not configured")]
    UnknownMasterKey(String),
    #[error("the stored key could not be decrypted (wrong owner, or tampered)")]
    Corrupt,
}

fn aad(owner: KeyOwner<'_>, master_key_id: &str) -> Vec<u8> {
    format!(
        "keyward/v1|{}|{}|{}",
        owner.user_id, owner.provider, master_key_id
    )
    .into_bytes()
}

fn cipher(key: &MasterKey) -> Aes256Gcm {
    Aes256Gcm::new(key.bytes().into())
}

/// Encrypts `secret` for `owner` under `key`.
pub fn seal(key: &MasterKey, owner: KeyOwner<'_>, secret: &SecretString) -> SealedKey {
    let mut nonce = [0u8; NONCE_LEN];
    rand::rngs::OsRng.fill_bytes(&mut nonce);
    let aad = aad(owner, key.id());
    let ciphertext = cipher(key)
        .encrypt(
            &Nonce::from(nonce),
            Payload {
                msg: secret.expose_secret().as_bytes(),
                aad: &aad,
            },
        )
        .expect("AES-GCM encryption of a short key cannot fail");
    SealedKey {
        ciphertext,
        nonce: nonce.to_vec(),
        master_key_id: key.id().to_owned(),
    }
}

/// Decrypts a sealed key with whichever configured master key wrote it.
pub fn open(
    keyring: &Keyring,
    owner: KeyOwner<'_>,
    sealed: &SealedKey,
) -> Result<SecretString, VaultError> {
    let key = keyring
        .find(&sealed.master_key_id)
        .ok_or_else(|| VaultError::UnknownMasterKey(sealed.master_key_id.clone()))?;
    let nonce: [u8; NONCE_LEN] = sealed
        .nonce
        .as_slice()
        .try_into()
        .map_err(|_| VaultError::Corrupt)?;
    let aad = aad(owner, key.id());
    let plaintext = Zeroizing::new(
        cipher(key)
            .decrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: &sealed.ciphertext,
                    aad: &aad,
                },
            )
            .map_err(|_| VaultError::Corrupt)?,
    );
    let text = std::str::from_utf8(&plaintext).map_err(|_| VaultError::Corrupt)?;
    Ok(SecretString::from(text.to_owned()))
}

/// Re-encrypts under the keyring's current key; `None` when already current.
pub fn rewrap(
    keyring: &Keyring,
    owner: KeyOwner<'_>,
    sealed: &SealedKey,
) -> Result<Option<SealedKey>, VaultError> {
    if sealed.master_key_id == keyring.current.id() {
        return Ok(None);
    }
    let plaintext = open(keyring, owner, sealed)?;
    Ok(Some(seal(&keyring.current, owner, &plaintext)))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALICE: KeyOwner<'static> = KeyOwner {
        user_id: 1,
        provider: "anthropic",
    };
    const BOB: KeyOwner<'static> = KeyOwner {
        user_id: 2,
        provider: "anthropic",
    };

    fn secret() -> SecretString {
        SecretString::from("sk-ant-api03-test-key-ABCD".to_owned())
    }

    fn keyring() -> Keyring {
        Keyring {
            current: MasterKey::generate(),
            old: vec![],
        }
    }

    #[test]
    fn round_trip() {
        let ring = keyring();
        let sealed = seal(&ring.current, ALICE, &secret());
        assert_eq!(
            open(&ring, ALICE, &sealed).unwrap().expose_secret(),
            secret().expose_secret()
        );
        assert_eq!(sealed.master_key_id, ring.current.id());
        assert_eq!(sealed.nonce.len(), 12);
    }

    #[test]
    fn two_encryptions_of_the_same_key_differ() {
        let ring = keyring();
        let a = seal(&ring.current, ALICE, &secret());
        let b = seal(&ring.current, ALICE, &secret());
        assert_ne!(a.nonce, b.nonce);
        assert_ne!(a.ciphertext, b.ciphertext);
    }

    #[test]
    fn ciphertext_is_not_the_plaintext() {
        let ring = keyring();
        let sealed = seal(&ring.current, ALICE, &secret());
        let plain = secret().expose_secret().as_bytes().to_vec();
        assert!(!sealed
            .ciphertext
            .windows(plain.len())
            .any(|w| w == plain.as_slice()));
    }

    #[test]
    fn moving_a_ciphertext_to_another_user_or_provider_fails() {
        let ring = keyring();
        let sealed = seal(&ring.current, ALICE, &secret());
        assert_eq!(open(&ring, BOB, &sealed).unwrap_err(), VaultError::Corrupt);
        let other_provider = KeyOwner {
            user_id: 1,
            provider: "openai",
        };
        assert_eq!(
            open(&ring, other_provider, &sealed).unwrap_err(),
            VaultError::Corrupt
        );
    }

    #[test]
    fn relabelling_the_master_key_id_fails() {
        let old = MasterKey::generate();
        let ring = Keyring {
            current: MasterKey::generate(),
            old: vec![old.clone()],
        };
        let mut sealed = seal(&ring.current, ALICE, &secret());
        sealed.master_key_id = old.id().to_owned();
        assert_eq!(
            open(&ring, ALICE, &sealed).unwrap_err(),
            VaultError::Corrupt
        );
    }

    #[test]
    fn tampered_ciphertext_or_nonce_fails() {
        let ring = keyring();
        let sealed = seal(&ring.current, ALICE, &secret());
        let mut bad = sealed.clone();
        bad.ciphertext[0] ^= 1;
        assert_eq!(open(&ring, ALICE, &bad).unwrap_err(), VaultError::Corrupt);
        let mut bad = sealed.clone();
        bad.nonce[0] ^= 1;
        assert_eq!(open(&ring, ALICE, &bad).unwrap_err(), VaultError::Corrupt);
        let mut bad = sealed;
        bad.nonce.pop();
        assert_eq!(open(&ring, ALICE, &bad).unwrap_err(), VaultError::Corrupt);
    }

    #[test]
    fn unknown_master_key_is_a_clear_error() {
        let writer = keyring();
        let sealed = seal(&writer.current, ALICE, &secret());
        let reader = keyring();
        let err = open(&reader, ALICE, &sealed).unwrap_err();
        assert_eq!(
            err,
            VaultError::UnknownMasterKey(writer.current.id().to_owned())
        );
        assert!(err.to_string().contains("not configured"));
    }

    #[test]
    fn old_master_key_still_decrypts_and_rewrap_moves_to_current() {
        let old = MasterKey::generate();
        let sealed = seal(&old, ALICE, &secret());
        let ring = Keyring {
            current: MasterKey::generate(),
            old: vec![old],
        };
        assert_eq!(
            open(&ring, ALICE, &sealed).unwrap().expose_secret(),
            secret().expose_secret()
        );
        let moved = rewrap(&ring, ALICE, &sealed)
            .unwrap()
            .expect("moved to the current key");
        assert_eq!(moved.master_key_id, ring.current.id());
        assert_eq!(
            open(&ring, ALICE, &moved).unwrap().expose_secret(),
            secret().expose_secret()
        );
        assert_eq!(rewrap(&ring, ALICE, &moved).unwrap(), None, "idempotent");
    }

    #[test]
    fn debug_shows_no_bytes() {
        let ring = keyring();
        let sealed = seal(&ring.current, ALICE, &secret());
        let printed = format!("{sealed:?}");
        assert!(printed.contains("ciphertext_len"));
        assert!(!printed.contains("sk-ant"));
    }
}
