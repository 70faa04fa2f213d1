use leptos::prelude::*;
use leptos_meta::Title;

#[component]
pub fn NotFound() -> impl IntoView {
    view! {
        <Title text="Not found" />
        <section class="card narrow">
            <h1>"Page not found"</h1>
            <p>"There is nothing at this address."</p>
            <p><a href="/">"Go to the start page"</a></p>
        </section>
    }
}
