//! The period picker: today, 7 or 30 days, or custom dates, kept in the URL.

use leptos::prelude::*;
use leptos_router::hooks::use_query_map;

use crate::model::admin::PeriodQuery;

/// The period the URL asks for (`?days=30` or `?from=…&to=…`).
pub fn use_period() -> Memo<PeriodQuery> {
    let query = use_query_map();
    Memo::new(move |_| {
        query.with(|q| PeriodQuery {
            days: q.get("days").and_then(|d| d.parse().ok()),
            from: q.get("from").filter(|v| !v.is_empty()),
            to: q.get("to").filter(|v| !v.is_empty()),
        })
    })
}

#[component]
pub fn PeriodPicker(from: String, to: String) -> impl IntoView {
    let period = use_period();
    let chosen = move |days: u32| {
        period.with(|p| p.from.is_none() && p.to.is_none() && p.days.unwrap_or(7) == days)
    };
    let option = move |days: u32, label: &'static str| {
        view! {
            <a href=format!("?days={days}") class="chip" aria-current=move || chosen(days).then_some("true")>{label}</a>
        }
    };
    view! {
        <div class="period">
            {option(1, "Today")}
            {option(7, "7 days")}
            {option(30, "30 days")}
            <form method="get" class="custom-period">
                <label for="period-from">"From"</label>
                <input id="period-from" type="date" name="from" value=from />
                <label for="period-to">"To"</label>
                <input id="period-to" type="date" name="to" value=to />
                <button type="submit" class="button small-plain">"Show"</button>
            </form>
        </div>
    }
}
