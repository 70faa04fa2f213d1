//! keyward: chat with Claude on the operator's platform key or on your own key.
//!
//! One crate, two builds: `ssr` (the axum server, `src/server`) and `hydrate`
//! (the wasm that takes over the server-rendered pages).

// Leptos view types nest deeply; release builds (no type erasure) need headroom.
#![recursion_limit = "512"]

pub mod api;
pub mod app;
pub mod components;
pub mod error;
pub mod markdown;
pub mod model;
pub mod pages;

#[cfg(feature = "ssr")]
pub mod server;

#[cfg(feature = "hydrate")]
#[wasm_bindgen::prelude::wasm_bindgen]
pub fn hydrate() {
    console_error_panic_hook::set_once();
    leptos::mount::hydrate_body(app::App);
}
