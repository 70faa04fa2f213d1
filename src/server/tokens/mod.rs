//! Personal tokens for the gateway: `kw_` + 32 base62 characters (190 random
//! bits), stored only as their SHA-256, shown once, revocable.

mod cache;
mod format;
mod service;

pub use cache::{Principal, PrincipalCache};
pub use format::{hash_token, hex, looks_like_token, new_token};
pub use service::{create_token, list_tokens, revoke_token, revoke_token_by_name, CreatedToken};
