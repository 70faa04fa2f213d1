//! Users' own Anthropic keys: checking a pasted key, storing it sealed,
//! reporting its status, and master-key rotation.

mod probe;
pub mod rotation;
mod service;
mod shape;

pub use probe::{probe_key, ProbeOutcome};
pub use service::{key_status, open_user_key, remove_key, save_key, UserKey};
pub use shape::{check_shape, last4, mask};

/// The provider name stored with each key (and bound into its AAD).
pub const ANTHROPIC: &str = "anthropic";
