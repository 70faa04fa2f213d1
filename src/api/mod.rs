//! Server functions: thin wrappers that check who is asking, then call the
//! service layer in `crate::server`.

pub mod account;
pub mod admin;
pub mod auth;
pub mod chat;
pub mod keys;
pub mod tokens;
pub mod usage;

#[cfg(feature = "ssr")]
pub(crate) mod context;
