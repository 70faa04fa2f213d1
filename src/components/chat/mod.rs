//! The chat page's parts.

pub mod composer;
pub mod message;
pub mod sidebar;
#[cfg(feature = "hydrate")]
pub mod stream;
pub mod system_prompt;
