//! "Usage" on the settings page: today's free-tier use with bars, and the
//! last calls (on either key) so a premium user can audit their key's use.

use leptos::prelude::*;

use super::chat::message::format_usd;
use crate::{
    api::usage::my_usage,
    model::{CallSummary, UsageSummary},
};

#[component]
pub fn UsageSection() -> impl IntoView {
    let usage = Resource::new(|| (), |_| my_usage());
    view! {
        <section class="card" aria-labelledby="usage-heading">
            <h2 id="usage-heading">"Usage"</h2>
            <Transition fallback=|| view! { <p class="muted" aria-busy="true">"Loading usage…"</p> }>
                {move || usage.get().map(|result| match result {
                    Ok(summary) => view! { <UsageView summary /> }.into_any(),
                    Err(err) => view! { <p class="alert alert-error" role="alert">{err.to_string()}</p> }.into_any(),
                })}
            </Transition>
        </section>
    }
}

#[component]
fn UsageView(summary: UsageSummary) -> impl IntoView {
    let note = if summary.has_own_key {
        "Your chats run on your own key, so these free-tier limits do not apply to you.".to_owned()
    } else {
        format!(
            "Free tier ({} plan). Daily limits reset at 00:00 UTC, in {}.",
            summary.plan, summary.resets_in
        )
    };
    let per_minute = summary
        .requests_per_minute
        .map(|n| format!("{n} requests per minute"))
        .unwrap_or_else(|| "no per-minute limit".into());
    view! {
        <p class="muted">{note}</p>
        <UsageBar label="Requests today" used=summary.requests_today limit=summary.requests_per_day />
        <UsageBar label="Tokens today" used=summary.tokens_today limit=summary.tokens_per_day />
        <p class="hint">{format!("Also: {per_minute}; replies up to {} tokens.", summary.max_tokens)}</p>
        <h3>"Recent calls"</h3>
        {if summary.recent.is_empty() {
            view! { <p class="muted">"No calls yet."</p> }.into_any()
        } else {
            view! { <RecentCalls calls=summary.recent /> }.into_any()
        }}
    }
}

#[component]
fn UsageBar(label: &'static str, used: i64, limit: Option<i64>) -> impl IntoView {
    let text = match limit {
        Some(limit) => format!("{used} of {limit}"),
        None => format!("{used} (unlimited)"),
    };
    // An SVG bar: sized by attributes, so no inline style is needed under the CSP.
    let fraction = limit
        .filter(|l| *l > 0)
        .map(|l| (used as f64 / l as f64).clamp(0.0, 1.0))
        .unwrap_or(0.0);
    let full = fraction >= 1.0;
    view! {
        <div class="usage-row">
            <span class="usage-label">{label}</span>
            <span class="usage-numbers">{text.clone()}</span>
        </div>
        <svg class="usage-bar" viewBox="0 0 100 6" preserveAspectRatio="none" role="img" aria-label=format!("{label}: {text}")>
            <rect class="usage-track" x="0" y="0" width="100" height="6" rx="3" />
            <rect class=if full { "usage-fill full" } else { "usage-fill" } x="0" y="0" width=format!("{:.1}", fraction * 100.0) height="6" rx="3" />
        </svg>
    }
}

#[component]
fn RecentCalls(calls: Vec<CallSummary>) -> impl IntoView {
    view! {
        <div class="table-wrap">
            <table class="data">
                <thead>
                    <tr>
                        <th scope="col">"Time"</th>
                        <th scope="col">"Model"</th>
                        <th scope="col">"Paid by"</th>
                        <th scope="col">"Tokens in / out"</th>
                        <th scope="col">"Cost"</th>
                        <th scope="col">"Status"</th>
                    </tr>
                </thead>
                <tbody>
                    {calls
                        .into_iter()
                        .map(|call| {
                            let paid_by = if call.paid_by == "user" { "your key" } else { "free tier" };
                            view! {
                                <tr>
                                    <td>{call.at}</td>
                                    <td>{call.model}</td>
                                    <td>{paid_by}</td>
                                    <td>{format!("{} / {}", call.input_tokens, call.output_tokens)}</td>
                                    <td>{format_usd(call.cost_micro_usd)}</td>
                                    <td>{call.status}</td>
                                </tr>
                            }
                        })
                        .collect_view()}
                </tbody>
            </table>
        </div>
    }
}
