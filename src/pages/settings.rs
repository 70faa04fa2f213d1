use leptos::prelude::*;
use leptos_meta::Title;

use crate::components::{
    api_key_section::ApiKeySection, auth_state::use_auth, guards::RequireUser,
    key_caps_section::KeyCapsSection, password_section::PasswordSection,
    system_prompt_section::SystemPromptSection, tokens_section::TokensSection,
    usage_section::UsageSection,
};

#[component]
pub fn SettingsPage() -> impl IntoView {
    let auth = use_auth();
    let email = move || auth.user().map(|u| u.email).unwrap_or_default();
    view! {
        <Title text="Settings" />
        <RequireUser>
            <div class="settings">
                <h1>"Settings"</h1>
                <p class="muted">"Logged in as " <strong>{email}</strong></p>
                <ApiKeySection />
                <KeyCapsSection />
                <UsageSection />
                <SystemPromptSection />
                <TokensSection />
                <PasswordSection />
            </div>
        </RequireUser>
    }
}
