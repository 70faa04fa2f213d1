//! "Usage" on the settings page: today's free-tier use with bars, and the
//! last calls (on either key) so a premium user can audit their key's use.

use leptos::prelude::*;

use super::{chat::message::format_usd, usage_bar::UsageBar};
use crate::{
    api::usage::my_usage,
    model::{domain::PaidBy, CallSummary, SessionSummary, UsageSummary},
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
        <p data-testid="caching-savings">{format!(
            "Prompt caching saved you {} today and {} this month (UTC), on either key.",
            format_usd(summary.saved_today),
            format_usd(summary.saved_this_month),
        )}</p>
        <h3>"Recent calls"</h3>
        {if summary.recent.is_empty() {
            view! { <p class="muted">"No calls yet."</p> }.into_any()
        } else {
            view! { <RecentCalls calls=summary.recent name_payer=PaidBy::label /> }.into_any()
        }}
        <h3>"Claude Code sessions"</h3>
        <SessionsTable sessions=summary.sessions />
    }
}

/// Gateway calls grouped by client session (Claude Code names each of its
/// sessions), newest first; shared with the admin's user page.
#[component]
pub fn SessionsTable(sessions: Vec<SessionSummary>) -> impl IntoView {
    if sessions.is_empty() {
        return view! {
            <p class="muted">"No Claude Code sessions yet. Calls from Claude Code through an API token show up here, one line per session."</p>
        }
        .into_any();
    }
    view! {
        <div class="table-wrap" tabindex="0">
            <table class="data sessions">
                <thead>
                    <tr>
                        <th scope="col">"Session"</th>
                        <th scope="col">"Calls"</th>
                        <th scope="col">"Agents"</th>
                        <th scope="col">"Tokens"</th>
                        <th scope="col">"Cost"</th>
                        <th scope="col">"First call"</th>
                        <th scope="col">"Last call"</th>
                    </tr>
                </thead>
                <tbody>
                    {sessions
                        .into_iter()
                        .map(|session| {
                            // The first block of a UUID tells sessions apart; the whole id is in the title.
                            let short: String = session.session.chars().take(8).collect();
                            let id = session.session.clone();
                            view! {
                                <tr data-session=id>
                                    <td><code title=session.session>{short}</code></td>
                                    <td>{session.calls}</td>
                                    <td>{session.agents}</td>
                                    <td>{session.tokens}</td>
                                    <td>{format_usd(session.cost_micro_usd)}</td>
                                    <td>{session.first}</td>
                                    <td>{session.last}</td>
                                </tr>
                            }
                        })
                        .collect_view()}
                </tbody>
            </table>
        </div>
    }
    .into_any()
}

/// A table of calls, newest first; `name_payer` words who paid (the user
/// reads "your key", an admin "user").
#[component]
pub fn RecentCalls(
    calls: Vec<CallSummary>,
    name_payer: fn(PaidBy) -> &'static str,
) -> impl IntoView {
    view! {
        <div class="table-wrap" tabindex="0">
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
                            let paid_by = name_payer(call.paid_by);
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
