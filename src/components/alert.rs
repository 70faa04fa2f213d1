//! Error messages shown to the user, announced by screen readers.

use leptos::prelude::*;

use crate::error::AppError;

/// Shows `message` in an alert when there is one.
#[component]
pub fn ErrorAlert(#[prop(into)] message: Signal<Option<String>>) -> impl IntoView {
    view! {
        <Show when=move || message.with(Option::is_some)>
            <p class="alert alert-error" role="alert">
                {move || message.get()}
            </p>
        </Show>
    }
}

/// The error message of a server action's last result, if it failed.
pub fn action_error<I, O>(action: ServerAction<I>) -> Signal<Option<String>>
where
    I: leptos::server_fn::ServerFn<Output = O, Error = AppError> + Clone + Send + Sync + 'static,
    O: Clone + Send + Sync + 'static,
    ServerAction<I>: Copy,
{
    let value = action.value();
    Signal::derive(move || {
        value.with(|r| {
            r.as_ref()
                .and_then(|r| r.as_ref().err())
                .map(ToString::to_string)
        })
    })
}
