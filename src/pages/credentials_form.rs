//! Pieces shared by the login and signup forms.

use leptos::prelude::*;
use leptos_router::hooks::use_navigate;

use crate::{components::auth_state::use_auth, error::AppError, model::UserView};

/// The "Email" and "Password" inputs; field names match the server functions.
#[component]
pub fn CredentialFields(
    password_autocomplete: &'static str,
    #[prop(optional)] password_hint: Option<&'static str>,
) -> impl IntoView {
    view! {
        <label for="email">"Email"</label>
        <input id="email" name="email" type="email" autocomplete="username" required autofocus />
        <label for="password">"Password"</label>
        <input
            id="password"
            name="password"
            type="password"
            autocomplete=password_autocomplete
            minlength="8"
            maxlength="128"
            required
            aria-describedby=password_hint.map(|_| "password-hint")
        />
        {password_hint.map(|hint| view! { <p id="password-hint" class="hint">{hint}</p> })}
    }
}

/// Once the server accepted the credentials: remember the user, open the chat.
pub fn enter_app_on_success(result: impl Fn() -> Option<Result<UserView, AppError>> + 'static) {
    let auth = use_auth();
    let navigate = use_navigate();
    Effect::new(move |_| {
        if let Some(Ok(user)) = result() {
            auth.set(Some(user));
            navigate("/chat", Default::default());
        }
    });
}
