//! A labelled bar for "used of limit", drawn as SVG so it needs no inline
//! style under the CSP.

use leptos::prelude::*;

fn plain(n: i64) -> String {
    n.to_string()
}

#[component]
pub fn UsageBar(
    label: &'static str,
    used: i64,
    limit: Option<i64>,
    /// How the numbers are written (plain counts unless told).
    #[prop(default = plain)]
    format: fn(i64) -> String,
) -> impl IntoView {
    let text = match limit {
        Some(limit) => format!("{} of {}", format(used), format(limit)),
        None => format!("{} (no limit)", format(used)),
    };
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
