//! The chat page's parts.

pub mod composer;
pub mod live_reply;
pub mod markdown_body;
pub mod message;
pub mod message_list;
pub mod sidebar;
pub mod state;
#[cfg(feature = "hydrate")]
pub mod stream;
pub mod system_prompt;
pub mod turns;
