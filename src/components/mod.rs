//! Reusable pieces of UI, one concern per file.

pub mod admin;
pub mod alert;
pub mod api_key_section;
pub mod auth_state;
pub mod chat;
pub mod guards;
pub mod hydration_script;
pub mod key_caps_section;
pub mod nav;
pub mod password_section;
pub mod static_html;
pub mod system_prompt_section;
pub mod tokens_section;
pub mod usage_bar;
pub mod usage_section;
