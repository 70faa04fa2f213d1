//! The top navigation bar.

use leptos::prelude::*;

use super::auth_state::use_auth;
use crate::model::SiteInfo;

#[component]
pub fn Nav() -> impl IntoView {
    let auth = use_auth();
    let site = expect_context::<SiteInfo>();
    let email = move || auth.user().map(|u| u.email).unwrap_or_default();
    view! {
        <header class="topbar">
            <a class="brand" href="/">
                <span class="brand-mark" aria-hidden="true">"◆"</span>
                "keyward"
            </a>
            <nav aria-label="Main">
                <Show
                    when=move || auth.is_logged_in()
                    fallback=move || {
                        view! {
                            <a href="/login">"Log in"</a>
                            <Show when=move || site.signup_open>
                                <a class="button small" href="/signup">"Sign up"</a>
                            </Show>
                        }
                    }
                >
                    <a href="/chat">"Chat"</a>
                    <a href="/settings">"Settings"</a>
                    <Show when=move || auth.is_admin()>
                        <a href="/admin">"Admin"</a>
                    </Show>
                    <span class="who" title=email>{email}</span>
                    <form method="post" action="/logout" class="inline">
                        <button type="submit" class="link-button">"Log out"</button>
                    </form>
                </Show>
            </nav>
        </header>
    }
}
