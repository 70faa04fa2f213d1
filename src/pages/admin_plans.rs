//! `/admin/plans`: the limits each plan puts on the platform key.

use leptos::prelude::*;
use leptos_meta::Title;

use crate::{
    api::admin::{list_plans, SavePlan},
    components::{
        admin::nav::AdminNav,
        alert::{action_error, ErrorAlert},
        guards::RequireAdmin,
    },
    model::{admin::PlanView, caching::PromptCaching, models::MODELS},
};

#[component]
pub fn AdminPlansPage() -> impl IntoView {
    let save = ServerAction::<SavePlan>::new();
    let plans = Resource::new(move || save.version().get(), |_| list_plans());
    let saved = move || {
        save.value()
            .get()
            .and_then(Result::ok)
            .map(|plan| format!("Plan \"{}\" saved.", plan.name))
    };
    view! {
        <Title text="Plans · Admin" />
        <RequireAdmin>
            <div class="admin">
                <AdminNav current="/admin/plans" />
                <section class="card" aria-labelledby="plans-heading">
                    <h1 id="plans-heading">"Plans"</h1>
                    <p class="muted">
                        "Limits apply only to calls on the platform key; users on their own key are not limited by their plan. "
                        "Leave a limit empty for no limit. KEYWARD_FREE_* settings, when set, override the free plan at start-up."
                    </p>
                    <p class="notice" role="status">{saved}</p>
                    <ErrorAlert message=action_error(save) />
                    <Transition fallback=|| view! { <p class="muted" aria-busy="true">"Loading plans…"</p> }>
                        {move || plans.get().map(|result| match result {
                            Ok(list) => list.into_iter().map(|plan| view! { <PlanForm plan=Some(plan) save /> }).collect_view().into_any(),
                            Err(err) => view! { <p class="alert alert-error" role="alert">{err.to_string()}</p> }.into_any(),
                        })}
                    </Transition>
                    <h2>"New plan"</h2>
                    <PlanForm plan=None save />
                </section>
            </div>
        </RequireAdmin>
    }
}

fn limit_text(limit: Option<i64>) -> String {
    limit.map(|n| n.to_string()).unwrap_or_default()
}

#[component]
fn PlanForm(plan: Option<PlanView>, save: ServerAction<SavePlan>) -> impl IntoView {
    let key = plan
        .as_ref()
        .map_or_else(|| "new".to_owned(), |p| p.id.to_string());
    let field = move |name: &str| format!("plan-{key}-{name}");
    let title = plan.as_ref().map_or_else(
        || "New plan".to_owned(),
        |p| format!("{} · {} user(s)", p.name, p.users),
    );
    let models: Vec<String> = plan.as_ref().map(|p| p.models.clone()).unwrap_or_default();
    let label = title.clone();
    let caching = plan.as_ref().map(|p| p.prompt_caching).unwrap_or_default();
    view! {
        <ActionForm action=save attr:class="plan-form" attr:aria-label=label>
            <fieldset>
                <legend>{title}</legend>
                {plan.as_ref().map(|p| view! { <input type="hidden" name="id" value=p.id.to_string() /> })}
                <div class="plan-grid">
                    <label for=field("name")>"Name"</label>
                    <input id=field("name") name="name" required maxlength="32" value=plan.as_ref().map(|p| p.name.clone()).unwrap_or_default() />
                    <label for=field("rpm")>"Requests per minute"</label>
                    <input id=field("rpm") name="requests_per_minute" inputmode="numeric" value=limit_text(plan.as_ref().and_then(|p| p.requests_per_minute)) />
                    <label for=field("rpd")>"Requests per day"</label>
                    <input id=field("rpd") name="requests_per_day" inputmode="numeric" value=limit_text(plan.as_ref().and_then(|p| p.requests_per_day)) />
                    <label for=field("tpd")>"Tokens per day"</label>
                    <input id=field("tpd") name="tokens_per_day" inputmode="numeric" value=limit_text(plan.as_ref().and_then(|p| p.tokens_per_day)) />
                    <label for=field("max")>"max_tokens clamp"</label>
                    <input id=field("max") name="max_tokens" inputmode="numeric" required value=plan.as_ref().map_or_else(|| "1024".to_owned(), |p| p.max_tokens.to_string()) />
                    <label for=field("cache")>"Prompt caching"</label>
                    <select id=field("cache") name="prompt_caching" aria-describedby=field("cache-hint")>
                        {PromptCaching::ALL.into_iter().map(|choice| view! {
                            <option value=choice.as_str() selected=caching == choice>{choice.label()}</option>
                        }).collect_view()}
                    </select>
                </div>
                <p class="hint" id=field("cache-hint")>
                    "Chat turns cache the conversation so far; the next turn reads it at a tenth of the input price. "
                    "One hour pays off when people come back to a conversation after more than five minutes."
                </p>
                <p class="hint">"Models on the platform key:"</p>
                <div class="model-choices">
                    {MODELS.iter().map(|m| {
                        let checked = models.iter().any(|chosen| chosen == m.id);
                        view! {
                            <label class="check">
                                <input type="checkbox" name="models[]" value=m.id checked=checked />
                                {m.label}
                            </label>
                        }
                    }).collect_view()}
                </div>
                <label class="check">
                    <input type="checkbox" name="allows_server_tools" value="on" checked=plan.as_ref().is_some_and(|p| p.allows_server_tools) />
                    "Allow Anthropic's server tools (web search, web fetch, code execution, MCP servers) on the platform key — they bill per use on top of tokens"
                </label>
                <button type="submit" class="button small-plain">"Save plan"</button>
            </fieldset>
        </ActionForm>
    }
}
