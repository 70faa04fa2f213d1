//! Page guards for client-side navigation. The server enforces the same rules
//! on every request (see `server::auth::guard_pages` and each server function);
//! these only keep the UI honest between full page loads.

use leptos::prelude::*;

use super::auth_state::use_auth;

#[component]
pub fn RequireUser(children: ChildrenFn) -> impl IntoView {
    let auth = use_auth();
    view! {
        <Show when=move || auth.is_logged_in() fallback=LoginPrompt>
            {children()}
        </Show>
    }
}

#[component]
pub fn RequireAdmin(children: ChildrenFn) -> impl IntoView {
    let auth = use_auth();
    let fallback = move || {
        if auth.is_logged_in() {
            Forbidden().into_any()
        } else {
            LoginPrompt().into_any()
        }
    };
    view! {
        <Show when=move || auth.is_admin() fallback=fallback>
            {children()}
        </Show>
    }
}

#[component]
fn LoginPrompt() -> impl IntoView {
    view! {
        <section class="card narrow">
            <h1>"Please log in"</h1>
            <p>"You need to be logged in to see this page."</p>
            <p><a class="button" href="/login">"Log in"</a></p>
        </section>
    }
}

#[component]
pub fn Forbidden() -> impl IntoView {
    view! {
        <section class="card narrow">
            <h1>"No access"</h1>
            <p role="alert">"You do not have access to this page. It is for administrators only."</p>
            <p><a href="/chat">"Back to chat"</a></p>
        </section>
    }
}
