//! Everything that runs only on the server.

pub mod accounting;
pub mod admin;
pub mod anthropic;
pub mod assets;
pub mod auth;
pub mod calls;
pub mod chat;
pub mod cli;
pub mod clock;
pub mod config;
pub mod db;
pub mod gateway;
pub mod limits;
pub mod metrics;
pub mod payer;
pub mod routing;
pub mod security;
mod serve;
pub mod startup;
pub mod state;
pub mod tokens;
pub mod user_keys;
pub mod vault;
