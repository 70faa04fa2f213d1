//! "Password" on the settings page.

use leptos::{html, prelude::*};

use super::alert::{action_error, ErrorAlert};
use crate::api::account::ChangePassword;

#[component]
pub fn PasswordSection() -> impl IntoView {
    let change = ServerAction::<ChangePassword>::new();
    let form = NodeRef::<html::Form>::new();
    let result = change.value();
    Effect::new(move |_| {
        if matches!(result.get(), Some(Ok(()))) {
            if let Some(form) = form.get() {
                form.reset();
            }
        }
    });
    let pending = change.pending();
    let done = move || {
        matches!(result.get(), Some(Ok(())))
            .then_some("Password changed. Your other sessions were logged out.")
    };
    view! {
        <section class="card" aria-labelledby="password-heading">
            <h2 id="password-heading">"Password"</h2>
            <ActionForm action=change node_ref=form attr:class="stack">
                <label for="current-password">"Current password"</label>
                <input id="current-password" name="current_password" type="password" autocomplete="current-password" required />
                <label for="new-password">"New password"</label>
                <input
                    id="new-password"
                    name="new_password"
                    type="password"
                    autocomplete="new-password"
                    minlength="8"
                    maxlength="128"
                    required
                />
                <p class="hint">"8 to 128 characters. Changing it logs out your other sessions."</p>
                <ErrorAlert message=action_error(change) />
                <p class="notice" role="status">{done}</p>
                <button type="submit" class="button" disabled=pending>"Change password"</button>
            </ActionForm>
        </section>
    }
}
