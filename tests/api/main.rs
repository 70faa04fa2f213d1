#![allow(clippy::unwrap_used)]
//! Integration tests: real server, real database, real HTTP.

mod books;
mod chat_helpers;
mod helpers;
mod logs;
mod mock;

mod accounts;
mod admin;
mod admission;
mod atomic_writes;
mod caching;
mod caps;
mod chat;
mod claude_code;
mod cli;
mod dashboard;
mod gateway;
mod hostile;
mod key_rotation;
mod keys;
mod ledger;
mod lifecycle;
mod lifecycle_property;
mod limits;
mod ops;
mod sdk;
mod server_tools;
mod shutdown;
mod turn_keys;
mod web_security;
