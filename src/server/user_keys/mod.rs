//! Users' own Anthropic keys: checking a pasted key, storing it sealed,
//! reporting its status, and master-key rotation.

mod caps;
mod probe;
pub mod rotation;
mod service;
mod shape;

pub use caps::{caps_status, set_caps};
pub use probe::{probe_key, ProbeOutcome};
pub use service::{decrypt_stored, key_status, remove_key, save_key, set_fallback};
pub use shape::{check_shape, last4, mask};

/// The provider name stored with each key (and bound into its AAD).
pub const ANTHROPIC: &str = "anthropic";
