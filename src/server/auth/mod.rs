//! Accounts: signup, login (with throttling and equal-time failures), sessions.

mod client_ip;
mod current_user;
pub mod password;
mod service;

pub use current_user::{
    end_session, guard_pages, load_current_user, start_session, ClientIp, CurrentUser,
};
pub use service::{
    change_password, create_user, login, new_dummy_hash, set_user_disabled, signup, validate_email,
    LoginThrottle,
};
