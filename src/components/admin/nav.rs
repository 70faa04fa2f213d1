//! Tabs between the admin pages.

use leptos::prelude::*;

#[component]
pub fn AdminNav(current: &'static str) -> impl IntoView {
    let link = move |href: &'static str, label: &'static str| {
        let aria_current = (href == current).then_some("page");
        view! { <a href=href aria-current=aria_current>{label}</a> }
    };
    view! {
        <nav class="admin-tabs" aria-label="Admin">
            {link("/admin", "Dashboard")}
            {link("/admin/plans", "Plans")}
            {link("/admin/audit", "Audit log")}
        </nav>
    }
}
