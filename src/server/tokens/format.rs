//! What a personal token looks like, and how it is hashed for storage.

use rand::{distributions::Alphanumeric, rngs::OsRng, Rng};
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};

pub const TOKEN_PREFIX: &str = "kw_";
/// 32 characters from 62 give 190 bits of randomness.
const RANDOM_CHARS: usize = 32;
/// Characters kept in clear (after `kw_`) so people can tell tokens apart.
const SHOWN_CHARS: usize = 6;

/// A new token and the part of it that may be displayed later.
pub fn new_token() -> (SecretString, String) {
    let random: String = OsRng
        .sample_iter(&Alphanumeric)
        .take(RANDOM_CHARS)
        .map(char::from)
        .collect();
    let shown = format!("{TOKEN_PREFIX}{}", &random[..SHOWN_CHARS]);
    (SecretString::from(format!("{TOKEN_PREFIX}{random}")), shown)
}

/// Whether `text` has a token's shape (checked before any hashing or lookup).
pub fn looks_like_token(text: &str) -> bool {
    text.strip_prefix(TOKEN_PREFIX).is_some_and(|rest| {
        rest.len() == RANDOM_CHARS && rest.bytes().all(|b| b.is_ascii_alphanumeric())
    })
}

/// The stored form: SHA-256, hex. Tokens carry 190 random bits, so a fast
/// hash is enough (there is nothing to brute-force as with passwords).
pub fn hash_token(token: &SecretString) -> [u8; 32] {
    Sha256::digest(token.expose_secret().as_bytes()).into()
}

pub fn hex(bytes: &[u8; 32]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_long_random_and_well_formed() {
        let (a, shown) = new_token();
        let (b, _) = new_token();
        assert_ne!(a.expose_secret(), b.expose_secret());
        assert!(looks_like_token(a.expose_secret()));
        assert!(a.expose_secret().starts_with(&shown));
        assert_eq!(shown.len(), 9);
        assert!(!looks_like_token("kw_short"));
        assert!(!looks_like_token(&format!("sk_{}", "a".repeat(32))));
        assert!(!looks_like_token(&format!("kw_{}!", "a".repeat(31))));
    }

    #[test]
    fn hashes_are_hex_sha256() {
        let token = SecretString::from("kw_abc".to_owned());
        let text = hex(&hash_token(&token));
        assert_eq!(
            text,
            "ff9dac9f37334a5d96e53ba242784744be2b8468227ab4c308055101b0eee6c6"
        );
    }
}
