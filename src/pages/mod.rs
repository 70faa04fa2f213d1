//! One file per page.

pub mod admin;
pub mod chat;
pub mod home;
pub mod login;
pub mod not_found;
pub mod settings;
pub mod signup;

mod credentials_form;
