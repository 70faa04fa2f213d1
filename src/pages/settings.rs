use leptos::prelude::*;
use leptos_meta::Title;

use crate::components::{auth_state::use_auth, guards::RequireUser};

#[component]
pub fn SettingsPage() -> impl IntoView {
    let auth = use_auth();
    let email = move || auth.user().map(|u| u.email).unwrap_or_default();
    view! {
        <Title text="Settings" />
        <RequireUser>
            <section class="card">
                <h1>"Settings"</h1>
                <h2>"Account"</h2>
                <p>"Logged in as " <strong>{email}</strong></p>
                <h2>"API key"</h2>
                <p class="muted">"No Anthropic key saved. You chat on this server's free tier."</p>
            </section>
        </RequireUser>
    }
}
