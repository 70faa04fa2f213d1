#![allow(clippy::unwrap_used)]
//! Integration tests: real server, real database, real HTTP.

mod helpers;
mod logs;
mod mock;

mod accounts;
mod admin;
mod cli;
mod key_rotation;
mod keys;
mod ops;
mod web_security;
