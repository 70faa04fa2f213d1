use leptos::prelude::*;
use leptos_meta::Title;

use super::credentials_form::{enter_app_on_success, CredentialFields};
use crate::{
    api::auth::Login,
    components::alert::{action_error, ErrorAlert},
    model::SiteInfo,
};

#[component]
pub fn LoginPage() -> impl IntoView {
    let login = ServerAction::<Login>::new();
    let site = expect_context::<SiteInfo>();
    let value = login.value();
    enter_app_on_success(move || value.get());
    let pending = login.pending();
    view! {
        <Title text="Log in" />
        <section class="card narrow">
            <h1>"Log in"</h1>
            <ActionForm action=login attr:class="stack">
                <CredentialFields password_autocomplete="current-password" />
                <ErrorAlert message=action_error(login) />
                <button type="submit" class="button primary" aria-busy=move || pending.get().to_string() disabled=pending>
                    "Log in"
                </button>
            </ActionForm>
            <Show when=move || site.signup_open>
                <p class="muted">"New here? " <a href="/signup">"Create an account"</a></p>
            </Show>
        </section>
    }
}
