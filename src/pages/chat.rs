use leptos::prelude::*;
use leptos_meta::Title;

use crate::components::guards::RequireUser;

#[component]
pub fn ChatPage() -> impl IntoView {
    view! {
        <Title text="Chat" />
        <RequireUser>
            <section class="card empty-state">
                <h1>"Chat"</h1>
                <p>"No conversations yet."</p>
                <p class="muted">
                    "Chatting with Claude arrives in the next release of this server. "
                    "Your account is ready: you can already add your own Anthropic key in Settings once key storage ships."
                </p>
            </section>
        </RequireUser>
    }
}
