//! `/admin`: who is spending what, on whose key, for a chosen period.

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_query_map;

use crate::{
    api::admin::{list_users, load_dashboard},
    components::{
        admin::{
            charts::{DayMetric, SavedDays, StackedDays, TopModels},
            nav::AdminNav,
            period::{use_period, PeriodPicker},
        },
        chat::message::format_usd,
        guards::RequireAdmin,
        static_html::StaticHtml,
    },
    model::admin::{AdminUserRow, Dashboard, TotalsView, UsersPage},
};

#[component]
pub fn AdminPage() -> impl IntoView {
    view! {
        <Title text="Admin" />
        <RequireAdmin>
            <div class="admin">
                <AdminNav current="/admin" />
                <DashboardView />
                <UsersSection />
            </div>
        </RequireAdmin>
    }
}

/// Micro-USD as a plain decimal (for data attributes and CSV-like uses).
pub fn usd_decimal(micro: i64) -> String {
    format!("{}.{:06}", micro / 1_000_000, micro % 1_000_000)
}

#[component]
fn DashboardView() -> impl IntoView {
    let period = use_period();
    let dashboard = Resource::new(move || period.get(), load_dashboard);
    view! {
        <Transition fallback=|| view! { <p class="muted" aria-busy="true">"Loading the dashboard…"</p> }>
            {move || dashboard.get().map(|result| match result {
                Ok(data) => view! { <DashboardBody data /> }.into_any(),
                Err(err) => view! { <p class="alert alert-error" role="alert">{err.to_string()}</p> }.into_any(),
            })}
        </Transition>
    }
}

#[component]
fn DashboardBody(data: Dashboard) -> impl IntoView {
    let heading = if data.from == data.to {
        format!("Usage on {}", data.from)
    } else {
        format!("Usage from {} to {}", data.from, data.to)
    };
    let export = format!("/admin/export.csv?from={}&to={}", data.from, data.to);
    let Dashboard {
        from,
        to,
        totals,
        days,
        models,
        latency_p50_ms,
        latency_p95_ms,
    } = data;
    // Figures and charts have nothing live in them: hydration keeps what
    // the server drew (see `StaticHtml`).
    let figures = StaticHtml::new(move || {
        view! { <Totals totals=totals.clone() latency=(latency_p50_ms, latency_p95_ms) /> }
    });
    let charts = StaticHtml::new(move || {
        view! {
            <StackedDays title="Cost per day" days=days.clone() metric=DayMetric::Cost />
            <StackedDays title="Requests per day" days=days.clone() metric=DayMetric::Requests />
            <SavedDays days=days.clone() />
            <TopModels models=models.clone() />
        }
    });
    view! {
        <section class="card" aria-labelledby="usage-heading">
            <div class="card-head">
                <h1 id="usage-heading">{heading}</h1>
                <a class="button small-plain" href=export rel="external" download>"Export CSV"</a>
            </div>
            <PeriodPicker from to />
            <dl class="totals" inner_html=figures></dl>
            <div class="charts" inner_html=charts></div>
        </section>
    }
}

/// The period's totals, as the terms of the `<dl class="totals">`.
#[component]
fn Totals(totals: TotalsView, latency: (Option<i64>, Option<i64>)) -> impl IntoView {
    let t = totals;
    let error_rate = if t.requests > 0 {
        format!("{:.1} %", t.errors as f64 * 100.0 / t.requests as f64)
    } else {
        "–".into()
    };
    let latency = match latency {
        (Some(p50), Some(p95)) => format!("{p50} ms / {p95} ms"),
        _ => "–".into(),
    };
    view! {
        <div><dt>"Platform cost"</dt><dd data-testid="platform-cost">{format_usd(t.platform_cost)}</dd></div>
        <div><dt>"Users' keys cost"</dt><dd>{format_usd(t.user_cost)}</dd></div>
        <div><dt>"Saved by caching"</dt><dd data-testid="saved-by-caching">{format_usd(t.saved_by_caching)}</dd><dd class="hint">"both keys"</dd></div>
        <div><dt>"Requests"</dt><dd>{t.requests.to_string()}</dd><dd class="hint">{format!("{} platform · {} own key", t.platform_requests, t.user_requests)}</dd></div>
        <div><dt>"Tokens in / out"</dt><dd>{format!("{} / {}", t.input_tokens, t.output_tokens)}</dd><dd class="hint">{format!("{} cache", t.cache_tokens)}</dd></div>
        <div><dt>"Active users"</dt><dd>{t.active_users.to_string()}</dd></div>
        <div><dt>"Error rate"</dt><dd>{error_rate}</dd></div>
        <div><dt>"Latency p50 / p95"</dt><dd>{latency}</dd></div>
    }
}

#[component]
fn UsersSection() -> impl IntoView {
    let period = use_period();
    let query = use_query_map();
    let search = Memo::new(move |_| query.with(|q| q.get("q").unwrap_or_default()));
    let sort = Memo::new(move |_| query.with(|q| q.get("sort").unwrap_or_else(|| "-cost".into())));
    let page =
        Memo::new(move |_| query.with(|q| q.get("page").and_then(|p| p.parse().ok()).unwrap_or(1)));
    let users = Resource::new(
        move || (period.get(), search.get(), sort.get(), page.get()),
        |(period, search, sort, page)| list_users(period, search, sort, page),
    );
    view! {
        <section class="card" aria-labelledby="users-heading">
            <h2 id="users-heading">"Users"</h2>
            <form method="get" class="search" role="search">
                <label for="user-search" class="visually-hidden">"Search users by email"</label>
                <input id="user-search" type="search" name="q" placeholder="Search by email" value=move || search.get() />
                {move || period.with(|p| {
                    view! {
                        <input type="hidden" name="days" value=p.days.map(|d| d.to_string()).unwrap_or_default() />
                        <input type="hidden" name="from" value=p.from.clone().unwrap_or_default() />
                        <input type="hidden" name="to" value=p.to.clone().unwrap_or_default() />
                    }
                })}
                <button type="submit" class="button small-plain">"Search"</button>
            </form>
            <Transition fallback=|| view! { <p class="muted" aria-busy="true">"Loading users…"</p> }>
                {move || users.get().map(|result| match result {
                    Ok(page) => view! { <UsersTable page sort=sort.get_untracked() /> }.into_any(),
                    Err(err) => view! { <p class="alert alert-error" role="alert">{err.to_string()}</p> }.into_any(),
                })}
            </Transition>
        </section>
    }
}

/// A link to the same page with one query parameter changed.
fn with_param(name: &str, value: &str) -> String {
    let query = use_query_map().get_untracked();
    let mut pairs: Vec<(String, String)> = query
        .into_iter()
        .map(|(k, v)| (k.into_owned(), v))
        .filter(|(k, _)| k != name && !(name != "page" && k == "page"))
        .collect();
    pairs.push((name.to_owned(), value.to_owned()));
    let encoded: Vec<String> = pairs
        .iter()
        .map(|(k, v)| format!("{k}={}", urlencode(v)))
        .collect();
    format!("?{}", encoded.join("&"))
}

fn urlencode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[component]
fn SortHeader(label: &'static str, key: &'static str, current: String) -> impl IntoView {
    let (next, aria) = if current == format!("-{key}") {
        (key.to_owned(), Some("descending"))
    } else if current == key {
        (format!("-{key}"), Some("ascending"))
    } else {
        (format!("-{key}"), None)
    };
    view! {
        <th scope="col" aria-sort=aria>
            <a href=with_param("sort", &next)>{label}</a>
        </th>
    }
}

#[component]
fn UsersTable(page: UsersPage, sort: String) -> impl IntoView {
    if page.users.is_empty() {
        return view! { <p class="muted">"No users match."</p> }.into_any();
    }
    let pages = (page.total + page.per_page - 1) / page.per_page;
    let previous = (page.page > 1).then(|| with_param("page", &(page.page - 1).to_string()));
    let next = (page.page < pages).then(|| with_param("page", &(page.page + 1).to_string()));
    // Links and text only (the router follows a click on any link).
    let users = page.users;
    let rows = StaticHtml::new(move || {
        users
            .iter()
            .map(|user| view! { <UserRow user=user.clone() /> })
            .collect_view()
    });
    view! {
        <div class="table-wrap" tabindex="0">
            <table class="data users">
                <thead>
                    <tr>
                        <SortHeader label="Email" key="email" current=sort.clone() />
                        <th scope="col">"Plan"</th>
                        <th scope="col">"Key"</th>
                        <SortHeader label="Requests" key="requests" current=sort.clone() />
                        <SortHeader label="Cost" key="cost" current=sort.clone() />
                        <SortHeader label="Last active" key="last_active" current=sort />
                    </tr>
                </thead>
                <tbody inner_html=rows></tbody>
            </table>
        </div>
        <nav class="pager" aria-label="Pages">
            {previous.map(|href| view! { <a href=href rel="prev">"← Previous"</a> })}
            <span>{format!("Page {} of {} · {} users", page.page, pages.max(1), page.total)}</span>
            {next.map(|href| view! { <a href=href rel="next">"Next →"</a> })}
        </nav>
    }
    .into_any()
}

#[component]
fn UserRow(user: AdminUserRow) -> impl IntoView {
    let href = format!("/admin/users/{}", user.id);
    let badges = match (user.is_admin, user.disabled) {
        (_, true) => Some("disabled"),
        (true, false) => Some("admin"),
        _ => None,
    };
    let email_attr = user.email.clone();
    view! {
        <tr
            data-email=email_attr
            data-requests-platform=user.platform_requests.to_string()
            data-requests-user=user.user_requests.to_string()
            data-cost-usd=usd_decimal(user.cost)
        >
            <td><a href=href>{user.email}</a>{badges.map(|b| view! { <span class="badge">{b}</span> })}</td>
            <td>{user.plan}</td>
            <td class=format!("key-{}", user.key_status)>{user.key_status.clone()}</td>
            <td>{format!("{} + {}", user.platform_requests, user.user_requests)}</td>
            <td>{format_usd(user.cost)}</td>
            <td>{user.last_active.unwrap_or_else(|| "–".into())}</td>
        </tr>
    }
}
