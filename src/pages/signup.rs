use leptos::prelude::*;
use leptos_meta::Title;

use super::credentials_form::{enter_app_on_success, CredentialFields};
use crate::{
    api::auth::Signup,
    components::alert::{action_error, ErrorAlert},
    model::SiteInfo,
};

#[component]
pub fn SignupPage() -> impl IntoView {
    let signup = ServerAction::<Signup>::new();
    let site = expect_context::<SiteInfo>();
    let value = signup.value();
    enter_app_on_success(move || value.get());
    let pending = signup.pending();
    view! {
        <Title text="Sign up" />
        <section class="card narrow">
            <h1>"Create your account"</h1>
            <Show
                when=move || site.signup_open
                fallback=|| {
                    view! {
                        <p role="alert" class="alert alert-info">
                            "Signup is closed on this server. Ask an administrator for an account."
                        </p>
                        <p><a href="/login">"Log in"</a></p>
                    }
                }
            >
                <p class="muted">
                    "Chat with Claude on the free tier right away; add your own Anthropic key later to go unlimited."
                </p>
                <ActionForm action=signup attr:class="stack">
                    <CredentialFields
                        password_autocomplete="new-password"
                        password_hint="8 to 128 characters. Long passphrases are best."
                    />
                    <ErrorAlert message=action_error(signup) />
                    <button type="submit" class="button primary" aria-busy=move || pending.get().to_string() disabled=pending>
                        "Sign up"
                    </button>
                </ActionForm>
                <p class="muted">"Already have an account? " <a href="/login">"Log in"</a></p>
            </Show>
        </section>
    }
}
