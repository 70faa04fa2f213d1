#![allow(clippy::unwrap_used)]
//! Integration tests: real server, real database, real HTTP.

mod helpers;

mod accounts;
mod admin;
mod cli;
mod ops;
mod web_security;
