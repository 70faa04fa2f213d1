//! Reusable pieces of UI, one concern per file.

pub mod alert;
pub mod auth_state;
pub mod guards;
pub mod nav;
