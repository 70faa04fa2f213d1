//! Charts drawn as plain SVG on the server (and re-drawn the same way in
//! the browser): no chart library, readable without JavaScript.

use leptos::prelude::*;

use crate::model::{
    admin::{DayPoint, ModelPoint},
    caps::format_usd_amount,
};

const WIDTH: f64 = 640.0;
const HEIGHT: f64 = 180.0;
const LEFT: f64 = 56.0;
const BOTTOM: f64 = 22.0;

/// Which series a stacked day chart shows.
#[derive(Clone, Copy)]
pub enum DayMetric {
    Cost,
    Requests,
}

impl DayMetric {
    fn values(self, day: &DayPoint) -> (f64, f64) {
        match self {
            DayMetric::Cost => (day.platform_cost as f64 / 1e6, day.user_cost as f64 / 1e6),
            DayMetric::Requests => (day.platform_requests as f64, day.user_requests as f64),
        }
    }

    fn label(self, value: f64) -> String {
        match self {
            // Exact, with the decimals small amounts need: a day of a few
            // cheap calls must not read "$0.00" at the top of the axis.
            DayMetric::Cost => format_usd_amount((value * 1e6).round() as i64),
            DayMetric::Requests => format!("{value:.0}"),
        }
    }
}

/// A day's `MM-DD` under its bar, centred on `x`.
fn day_label(day: &str, x: f64) -> impl IntoView {
    view! {
        <text x=format!("{x:.1}") y=format!("{:.1}", HEIGHT - 6.0) class="axis" text-anchor="middle">
            {day[5..].to_owned()}
        </text>
    }
}

/// Bars per day, stacked: platform key below, users' keys on top.
#[component]
pub fn StackedDays(title: &'static str, days: Vec<DayPoint>, metric: DayMetric) -> impl IntoView {
    let max = days
        .iter()
        .map(|d| {
            let (a, b) = metric.values(d);
            a + b
        })
        .fold(0.0, f64::max)
        .max(f64::MIN_POSITIVE);
    let plot_width = WIDTH - LEFT;
    let plot_height = HEIGHT - BOTTOM;
    let slot = plot_width / days.len().max(1) as f64;
    let bar = (slot * 0.7).max(1.0);
    let label_every = (days.len() / 8).max(1);
    let bars = days
        .iter()
        .enumerate()
        .map(|(i, day)| {
            let (platform, user) = metric.values(day);
            let x = LEFT + i as f64 * slot + (slot - bar) / 2.0;
            let platform_h = platform / max * plot_height;
            let user_h = user / max * plot_height;
            let tip = format!(
                "{}: platform {}, users' keys {}",
                day.day,
                metric.label(platform),
                metric.label(user)
            );
            let label = (i % label_every == 0).then(|| day_label(&day.day, x + bar / 2.0));
            view! {
                <g>
                    <title>{tip}</title>
                    <rect class="platform" x=format!("{x:.1}") y=format!("{:.1}", plot_height - platform_h) width=format!("{bar:.1}") height=format!("{platform_h:.1}") />
                    <rect class="user" x=format!("{x:.1}") y=format!("{:.1}", plot_height - platform_h - user_h) width=format!("{bar:.1}") height=format!("{user_h:.1}") />
                    {label}
                </g>
            }
        })
        .collect_view();
    view! {
        <figure class="chart">
            <figcaption>{title}</figcaption>
            <svg viewBox=format!("0 0 {WIDTH} {HEIGHT}") role="img" aria-label=title preserveAspectRatio="none">
                <line class="grid" x1=LEFT y1="0" x2=WIDTH y2="0" />
                <line class="grid" x1=LEFT y1=plot_height x2=WIDTH y2=plot_height />
                <text x=LEFT - 6.0 y="12" class="axis" text-anchor="end">{metric.label(max)}</text>
                <text x=LEFT - 6.0 y=plot_height class="axis" text-anchor="end">"0"</text>
                {bars}
            </svg>
            <p class="legend"><span class="swatch platform"></span>"platform key" <span class="swatch user"></span>"users' keys"</p>
        </figure>
    }
}

/// What caching saved per day. A day that only wrote the cache (it costs a
/// quarter more than plain input) saved less than nothing: its bar hangs
/// below the line.
#[component]
pub fn SavedDays(days: Vec<DayPoint>) -> impl IntoView {
    let most_saved = days
        .iter()
        .map(|d| d.saved_by_caching.unsigned_abs())
        .max()
        .unwrap_or(0);
    let most = most_saved.max(1) as f64;
    let below = days.iter().any(|d| d.saved_by_caching < 0);
    let plot_height = HEIGHT - BOTTOM;
    // The zero line: at the bottom, or in the middle when a day is negative.
    let zero = if below {
        plot_height / 2.0
    } else {
        plot_height
    };
    let slot = (WIDTH - LEFT) / days.len().max(1) as f64;
    let bar = (slot * 0.7).max(1.0);
    let label_every = (days.len() / 8).max(1);
    let usd = |micro: i64| {
        let amount = format_usd_amount(micro.abs());
        if micro < 0 {
            format!("−{amount}")
        } else {
            amount
        }
    };
    let bars = days
        .iter()
        .enumerate()
        .map(|(i, day)| {
            let saved = day.saved_by_caching;
            let x = LEFT + i as f64 * slot + (slot - bar) / 2.0;
            // Above and below the line there is `zero` of room either way.
            let height = saved.unsigned_abs() as f64 / most * zero;
            let top = if saved < 0 { zero } else { zero - height };
            let label = (i % label_every == 0).then(|| day_label(&day.day, x + bar / 2.0));
            view! {
                <g data-day=day.day.clone() data-saved-usd=format!("{:.6}", saved as f64 / 1e6)>
                    <title>{format!("{}: saved {}", day.day, usd(saved))}</title>
                    <rect class="saved" x=format!("{x:.1}") y=format!("{top:.1}") width=format!("{bar:.1}") height=format!("{height:.1}") />
                    {label}
                </g>
            }
        })
        .collect_view();
    view! {
        <figure class="chart">
            <figcaption>"Saved by caching per day"</figcaption>
            <svg viewBox=format!("0 0 {WIDTH} {HEIGHT}") role="img" aria-label="Saved by caching per day" preserveAspectRatio="none">
                <line class="grid" x1=LEFT y1=format!("{zero:.1}") x2=WIDTH y2=format!("{zero:.1}") />
                <text x=LEFT - 6.0 y="12" class="axis" text-anchor="end">{usd(most_saved as i64)}</text>
                <text x=LEFT - 6.0 y=format!("{zero:.1}") class="axis" text-anchor="end">"0"</text>
                {bars}
            </svg>
            <p class="legend"><span class="swatch saved"></span>"both keys, against the same calls uncached"</p>
        </figure>
    }
}

/// Requests per model, as horizontal bars.
#[component]
pub fn TopModels(models: Vec<ModelPoint>) -> impl IntoView {
    let max = models.iter().map(|m| m.requests).max().unwrap_or(0).max(1) as f64;
    let row = 26.0;
    let height = (models.len().max(1) as f64) * row;
    let bars = models
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let y = i as f64 * row;
            let width = m.requests as f64 / max * (WIDTH - 260.0);
            let tip = format!(
                "{}: {} requests, {} tokens, {}",
                m.model,
                m.requests,
                m.tokens,
                crate::components::chat::message::format_usd(m.cost)
            );
            view! {
                <g>
                    <title>{tip}</title>
                    <text x="0" y=format!("{:.1}", y + 17.0) class="axis">{m.model.clone()}</text>
                    <rect class="platform" x="170" y=format!("{:.1}", y + 5.0) width=format!("{width:.1}") height="16" />
                    <text x=format!("{:.1}", 176.0 + width) y=format!("{:.1}", y + 17.0) class="axis">{m.requests.to_string()}</text>
                </g>
            }
        })
        .collect_view();
    view! {
        <figure class="chart">
            <figcaption>"Top models (requests)"</figcaption>
            {if models.is_empty() {
                view! { <p class="muted">"No calls in this period."</p> }.into_any()
            } else {
                view! {
                    <svg viewBox=format!("0 0 {WIDTH} {height}") role="img" aria-label="Top models by requests">
                        {bars}
                    </svg>
                }
                .into_any()
            }}
        </figure>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_costs_keep_their_digits() {
        let label = |dollars| DayMetric::Cost.label(dollars);
        assert_eq!(label(12.345), "$12.345");
        assert_eq!(label(0.25), "$0.25");
        assert_eq!(label(0.0009), "$0.0009");
        assert_eq!(label(0.0123), "$0.0123");
        assert_eq!(label(0.000_042), "$0.000042");
        // An empty chart's axis (its top is the smallest positive number).
        assert_eq!(label(f64::MIN_POSITIVE), "$0");
    }
}
