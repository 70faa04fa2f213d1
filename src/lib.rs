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
    // As `leptos::mount::hydrate_lazy`: a lazily loaded page hydrates once
    // its chunk has arrived. Then the page says hydration has finished.
    wasm_bindgen_futures::spawn_local(async {
        let Some(body) = leptos::prelude::document().body() else {
            return;
        };
        leptos::mount::hydrate_from_async(body.clone(), app::App)
            .await
            .forget();
        // Browser tests wait for this before they click.
        let _ = body.set_attribute("data-hydrated", "true");
    });
}
