//! Everything that runs only on the server.

pub mod auth;
pub mod cli;
pub mod config;
pub mod db;
pub mod metrics;
pub mod security;
pub mod startup;
pub mod state;
pub mod user_keys;
pub mod vault;
