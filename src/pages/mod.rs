//! One file per page.

pub mod admin;
pub mod admin_audit;
pub mod admin_plans;
pub mod admin_user;
pub mod chat;
pub mod home;
pub mod login;
pub mod not_found;
pub mod settings;
pub mod signup;

mod credentials_form;
