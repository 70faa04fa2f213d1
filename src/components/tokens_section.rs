//! "API tokens" on the settings page: personal tokens for scripts and the
//! official SDKs. A new token is shown once, with a copy button.

use leptos::{html, prelude::*};

use super::alert::{action_error, ErrorAlert};
use crate::{
    api::tokens::{list_tokens, revoke_token, CreateToken},
    model::{NewToken, TokenView},
};

#[component]
pub fn TokensSection() -> impl IntoView {
    let create = ServerAction::<CreateToken>::new();
    let revoked = RwSignal::new(0u32);
    let revoke_error = RwSignal::new(None::<String>);
    let tokens = Resource::new(
        move || (create.version().get(), revoked.get()),
        |_| list_tokens(),
    );
    let form = NodeRef::<html::Form>::new();
    let created = create.value();
    Effect::new(move |_| {
        if matches!(created.get(), Some(Ok(_))) {
            if let Some(form) = form.get() {
                form.reset();
            }
        }
    });
    let pending = create.pending();
    let fresh = move || created.get().and_then(Result::ok);
    let on_revoke = Callback::new(move |token: TokenView| {
        let confirmed = window()
            .confirm_with_message(&format!(
                "Revoke the token \"{}\"? Programs using it stop working at once.",
                token.name
            ))
            .unwrap_or(false);
        if !confirmed {
            return;
        }
        leptos::task::spawn_local(async move {
            match revoke_token(token.id).await {
                Ok(()) => {
                    revoke_error.set(None);
                    revoked.update(|v| *v += 1);
                }
                Err(err) => revoke_error.set(Some(err.to_string())),
            }
        });
    });

    // The address the browser used, which the server cannot know behind a
    // proxy. Effects run only in the browser, after hydration (which keeps
    // the server's text, so a value read during it would not show).
    let origin = RwSignal::new(None::<String>);
    Effect::new(move |_| origin.set(browser_origin()));
    view! {
        <section class="card" aria-labelledby="tokens-heading">
            <h2 id="tokens-heading">"API tokens"</h2>
            <p class="muted">
                "Use keyward from scripts and the official Anthropic SDKs: point them at this server "
                "and use a token as the API key. Calls go through the same key and limits as your chats."
            </p>
            <pre class="snippet"><code>{move || sdk_snippet(origin.get())}</code></pre>
            {move || fresh().map(|new| view! { <FreshToken new /> })}
            <Transition fallback=|| view! { <p class="muted" aria-busy="true">"Loading your tokens…"</p> }>
                {move || tokens.get().map(|result| match result {
                    Ok(list) if list.is_empty() => view! { <p class="muted">"No tokens yet."</p> }.into_any(),
                    Ok(list) => view! { <TokenTable list on_revoke /> }.into_any(),
                    Err(err) => view! { <p class="alert alert-error" role="alert">{err.to_string()}</p> }.into_any(),
                })}
            </Transition>
            <ErrorAlert message=revoke_error />
            <ActionForm action=create node_ref=form attr:class="stack">
                <label for="token-name">"Token name"</label>
                <input id="token-name" name="name" type="text" maxlength="64" required placeholder="e.g. laptop scripts" />
                <ErrorAlert message=action_error(create) />
                <button type="submit" class="button" disabled=pending>"Create token"</button>
            </ActionForm>
        </section>
    }
}

/// Python SDK usage with this server's address (a placeholder until the
/// browser has said what it is).
fn sdk_snippet(origin: Option<String>) -> String {
    let origin = origin.unwrap_or_else(|| "https://keyward.example".into());
    format!(
        "import anthropic\nclient = anthropic.Anthropic(base_url=\"{origin}\", api_key=\"kw_…\")"
    )
}

#[cfg(feature = "hydrate")]
fn browser_origin() -> Option<String> {
    window().location().origin().ok()
}

#[cfg(not(feature = "hydrate"))]
fn browser_origin() -> Option<String> {
    None
}

#[component]
fn FreshToken(new: NewToken) -> impl IntoView {
    let copied = RwSignal::new(false);
    let token = new.token.clone();
    let copy = move |_| {
        #[cfg(feature = "hydrate")]
        {
            let promise = window().navigator().clipboard().write_text(&token);
            leptos::task::spawn_local(async move {
                if wasm_bindgen_futures::JsFuture::from(promise).await.is_ok() {
                    copied.set(true);
                }
            });
        }
        #[cfg(not(feature = "hydrate"))]
        let _ = &token;
    };
    view! {
        <div class="fresh-token" role="status">
            <p>
                <strong>{format!("Token \"{}\" created.", new.view.name)}</strong>
                " Copy it now: it is shown only this once."
            </p>
            <p class="token-line">
                <code data-testid="new-token">{new.token}</code>
                <button type="button" class="button small" on:click=copy>
                    {move || if copied.get() { "Copied" } else { "Copy" }}
                </button>
            </p>
        </div>
    }
}

#[component]
fn TokenTable(list: Vec<TokenView>, on_revoke: Callback<TokenView>) -> impl IntoView {
    view! {
        <div class="table-wrap">
            <table class="data tokens">
                <thead>
                    <tr><th scope="col">"Name"</th><th scope="col">"Token"</th><th scope="col">"Created"</th><th scope="col">"Last used"</th><th scope="col"><span class="visually-hidden">"Actions"</span></th></tr>
                </thead>
                <tbody>
                    {list.into_iter().map(|token| {
                        let label = format!("Revoke {}", token.name);
                        let row = token.clone();
                        let name_attr = token.name.clone();
                        view! {
                            <tr data-token-name=name_attr>
                                <td>{token.name}</td>
                                <td><code>{format!("{}…", token.prefix)}</code></td>
                                <td>{token.created_on}</td>
                                <td>{token.last_used.unwrap_or_else(|| "never".into())}</td>
                                <td>
                                    <button type="button" class="button small danger" aria-label=label on:click=move |_| on_revoke.run(row.clone())>
                                        "Revoke"
                                    </button>
                                </td>
                            </tr>
                        }
                    }).collect_view()}
                </tbody>
            </table>
        </div>
    }
}
