//! Server functions: thin wrappers that check who is asking, then call the
//! service layer in `crate::server`.

pub mod admin;
pub mod auth;

#[cfg(feature = "ssr")]
pub(crate) mod context;
