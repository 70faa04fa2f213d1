//! "API tokens" on the settings page: personal tokens for Claude Code,
//! scripts and the official SDKs. A new token is shown once, with a copy
//! button and ready-made setups that carry it.

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
            <pre class="snippet" tabindex="0"><code>{move || sdk_snippet(origin.get())}</code></pre>
            {move || fresh().map(|new| view! { <FreshToken new origin /> })}
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
fn FreshToken(new: NewToken, origin: RwSignal<Option<String>>) -> impl IntoView {
    let token = new.token.clone();
    let token_for_snippets = new.token.clone();
    let plan_models = new.plan_models.clone();
    view! {
        <div class="fresh-token" role="status">
            <p>
                <strong>{format!("Token \"{}\" created.", new.view.name)}</strong>
                " Copy it now: it is shown only this once."
            </p>
            <p class="token-line">
                <code data-testid="new-token">{new.token}</code>
                <CopyButton text=Signal::derive(move || token.clone()) label="Copy token" />
            </p>
            {move || {
                setup_snippets(origin.get().as_deref(), &token_for_snippets, plan_models.as_deref())
                    .into_iter()
                    .map(|snippet| view! { <SetupSnippet snippet /> })
                    .collect_view()
            }}
        </div>
    }
}

/// A ready-made setup: what it is for, and the text to paste.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snippet {
    pub tool: &'static str,
    pub id: &'static str,
    pub text: String,
}

/// How to point Claude Code and the official SDKs at this server with
/// `token`. On the plan (`plan_models` given) Claude Code is told which
/// models to use, since it picks its own by default; on the user's own key
/// it needs nothing more.
pub fn setup_snippets(
    origin: Option<&str>,
    token: &str,
    plan_models: Option<&[String]>,
) -> Vec<Snippet> {
    let origin = origin.unwrap_or("https://keyward.example");
    let mut claude_code = format!(
        "export ANTHROPIC_BASE_URL=\"{origin}\"\nexport ANTHROPIC_AUTH_TOKEN=\"{token}\"\n"
    );
    if let Some(models) = plan_models.filter(|models| !models.is_empty()) {
        // The first listed model does the work; the last (plans list the
        // cheapest last, if at all) the background tasks.
        let main = &models[0];
        let fast = models.last().unwrap_or(main);
        claude_code.push_str(&format!(
            "export ANTHROPIC_MODEL=\"{main}\"\nexport ANTHROPIC_SMALL_FAST_MODEL=\"{fast}\"\n"
        ));
    }
    claude_code.push_str("claude");
    vec![
        Snippet { tool: "Claude Code", id: "claude-code", text: claude_code },
        Snippet {
            tool: "Python SDK",
            id: "python",
            text: format!("import anthropic\n\nclient = anthropic.Anthropic(base_url=\"{origin}\", api_key=\"{token}\")"),
        },
        Snippet {
            tool: "TypeScript SDK",
            id: "typescript",
            text: format!(
                "import Anthropic from \"@anthropic-ai/sdk\";\n\nconst client = new Anthropic({{ baseURL: \"{origin}\", apiKey: \"{token}\" }});"
            ),
        },
    ]
}

#[component]
fn SetupSnippet(snippet: Snippet) -> impl IntoView {
    let heading = format!("{} setup", snippet.tool);
    let label = format!("Copy the {} setup", snippet.tool);
    let text = snippet.text.clone();
    view! {
        <figure class="setup-snippet" data-testid=format!("setup-{}", snippet.id)>
            <figcaption>{heading}</figcaption>
            <pre class="snippet" tabindex="0"><code>{snippet.text}</code></pre>
            <CopyButton text=Signal::derive(move || text.clone()) label />
        </figure>
    }
}

/// A button that copies `text` and says so.
#[component]
fn CopyButton(text: Signal<String>, #[prop(into)] label: String) -> impl IntoView {
    let copied = RwSignal::new(false);
    let copy = move |_| {
        #[cfg(feature = "hydrate")]
        {
            let promise = window()
                .navigator()
                .clipboard()
                .write_text(&text.get_untracked());
            leptos::task::spawn_local(async move {
                if wasm_bindgen_futures::JsFuture::from(promise).await.is_ok() {
                    copied.set(true);
                }
            });
        }
        #[cfg(not(feature = "hydrate"))]
        let _ = text;
    };
    view! {
        <button type="button" class="button small" aria-label=label on:click=copy>
            {move || if copied.get() { "Copied" } else { "Copy" }}
        </button>
    }
}

#[component]
fn TokenTable(list: Vec<TokenView>, on_revoke: Callback<TokenView>) -> impl IntoView {
    view! {
        <div class="table-wrap" tabindex="0">
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_claude_code_setup_names_the_plans_models_only_on_the_plan() {
        let models = vec![
            "claude-sonnet-4-5".to_owned(),
            "claude-haiku-4-5".to_owned(),
        ];
        let on_plan = setup_snippets(Some("https://kw.example.org"), "kw_abc", Some(&models));
        let claude_code = &on_plan[0].text;
        assert!(claude_code.contains("export ANTHROPIC_BASE_URL=\"https://kw.example.org\""));
        assert!(claude_code.contains("export ANTHROPIC_AUTH_TOKEN=\"kw_abc\""));
        assert!(claude_code.contains("ANTHROPIC_MODEL=\"claude-sonnet-4-5\""));
        assert!(claude_code.contains("ANTHROPIC_SMALL_FAST_MODEL=\"claude-haiku-4-5\""));
        assert!(on_plan[1]
            .text
            .contains("base_url=\"https://kw.example.org\", api_key=\"kw_abc\""));
        assert!(on_plan[2]
            .text
            .contains("baseURL: \"https://kw.example.org\", apiKey: \"kw_abc\""));
        let own_key = setup_snippets(Some("https://kw.example.org"), "kw_abc", None);
        assert!(
            !own_key[0].text.contains("ANTHROPIC_MODEL"),
            "any model on the user's key"
        );
    }
}
