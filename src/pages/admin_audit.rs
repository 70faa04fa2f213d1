//! `/admin/audit`: the append-only record of security events and admin actions.

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_query_map;

use crate::{
    api::admin::audit_log,
    components::{admin::nav::AdminNav, guards::RequireAdmin},
    model::admin::AuditPage,
};

#[component]
pub fn AdminAuditPage() -> impl IntoView {
    let query = use_query_map();
    let filters = Memo::new(move |_| {
        query.with(|q| {
            (
                q.get("action").unwrap_or_default(),
                q.get("email").unwrap_or_default(),
                q.get("page")
                    .and_then(|p| p.parse::<i64>().ok())
                    .unwrap_or(1),
            )
        })
    });
    let page = Resource::new(
        move || filters.get(),
        |(action, email, page)| audit_log(action, email, page),
    );
    view! {
        <Title text="Audit log · Admin" />
        <RequireAdmin>
            <div class="admin">
                <AdminNav current="/admin/audit" />
                <section class="card" aria-labelledby="audit-heading">
                    <h1 id="audit-heading">"Audit log"</h1>
                    <p class="muted">"Logins, key and token changes, and admin actions. Entries cannot be changed or deleted, and never hold secrets."</p>
                    <Transition fallback=|| view! { <p class="muted" aria-busy="true">"Loading the audit log…"</p> }>
                        {move || page.get().map(|result| match result {
                            Ok(page) => view! { <AuditView page filters=filters.get_untracked() /> }.into_any(),
                            Err(err) => view! { <p class="alert alert-error" role="alert">{err.to_string()}</p> }.into_any(),
                        })}
                    </Transition>
                </section>
            </div>
        </RequireAdmin>
    }
}

#[component]
fn AuditView(page: AuditPage, filters: (String, String, i64)) -> impl IntoView {
    let (action, email, _) = filters;
    let link = |to: i64| format!("?action={}&email={}&page={to}", action, email);
    let previous = (page.page > 1).then(|| link(page.page - 1));
    let next = page.has_more.then(|| link(page.page + 1));
    view! {
        <form method="get" class="search">
            <label for="audit-action">"Action"</label>
            <select id="audit-action" name="action">
                <option value="" selected=action.is_empty()>"All"</option>
                {page.actions.iter().map(|a| {
                    let selected = *a == action;
                    view! { <option value=a.clone() selected=selected>{a.clone()}</option> }
                }).collect_view()}
            </select>
            <label for="audit-email">"Email"</label>
            <input id="audit-email" type="search" name="email" value=email.clone() placeholder="actor or subject" />
            <button type="submit" class="button small-plain">"Filter"</button>
        </form>
        {if page.entries.is_empty() {
            view! { <p class="muted">"No entries match."</p> }.into_any()
        } else {
            view! {
                <div class="table-wrap" tabindex="0">
                    <table class="data audit">
                        <thead><tr><th scope="col">"Time"</th><th scope="col">"Action"</th><th scope="col">"By"</th><th scope="col">"On"</th><th scope="col">"Detail"</th><th scope="col">"IP"</th></tr></thead>
                        <tbody>
                            {page.entries.into_iter().map(|e| {
                                let action_attr = e.action.clone();
                                view! {
                                <tr data-action=action_attr>
                                    <td>{e.at}</td><td>{e.action}</td>
                                    <td>{e.actor.unwrap_or_else(|| "system".into())}</td>
                                    <td>{e.subject.unwrap_or_default()}</td>
                                    <td>{e.detail}</td>
                                    <td>{e.ip.unwrap_or_default()}</td>
                                </tr>
                                }
                            }).collect_view()}
                        </tbody>
                    </table>
                </div>
            }.into_any()
        }}
        <nav class="pager" aria-label="Pages">
            {previous.map(|href| view! { <a href=href rel="prev">"← Newer"</a> })}
            <span>{format!("Page {}", page.page)}</span>
            {next.map(|href| view! { <a href=href rel="next">"Older →"</a> })}
        </nav>
    }
}
