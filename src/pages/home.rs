use leptos::prelude::*;

use crate::model::SiteInfo;

/// Landing page for visitors (logged-in users are sent to the chat by the server).
#[component]
pub fn HomePage() -> impl IntoView {
    let site = expect_context::<SiteInfo>();
    view! {
        <section class="hero">
            <h1>"Chat with Claude, on a key you trust"</h1>
            <p class="lead">
                "Start on the free tier of this server. Bring your own Anthropic API key to go unlimited: "
                "it is stored encrypted, never sent to your browser, and every call is accounted for."
            </p>
            <p class="actions">
                <Show when=move || site.signup_open>
                    <a class="button primary" href="/signup">"Sign up"</a>
                </Show>
                <a class="button" href="/login">"Log in"</a>
            </p>
        </section>
    }
}
