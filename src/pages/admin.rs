use leptos::prelude::*;
use leptos_meta::Title;

use crate::{api::admin::list_users, components::guards::RequireAdmin, model::AdminUserSummary};

#[component]
pub fn AdminPage() -> impl IntoView {
    view! {
        <Title text="Admin" />
        <RequireAdmin>
            <AdminOverview />
        </RequireAdmin>
    }
}

#[component]
fn AdminOverview() -> impl IntoView {
    let users = Resource::new(|| (), |_| list_users());
    view! {
        <section class="card">
            <h1>"Admin"</h1>
            <p class="muted">"Usage by user, model and key source will show here once people chat."</p>
            <h2>"Users"</h2>
            <Suspense fallback=|| view! { <p class="muted" aria-busy="true">"Loading users…"</p> }>
                {move || {
                    users
                        .get()
                        .map(|result| match result {
                            Ok(users) => view! { <UsersTable users /> }.into_any(),
                            Err(err) => view! { <p class="alert alert-error" role="alert">{err.to_string()}</p> }.into_any(),
                        })
                }}
            </Suspense>
        </section>
    }
}

#[component]
fn UsersTable(users: Vec<AdminUserSummary>) -> impl IntoView {
    view! {
        <div class="table-wrap">
            <table class="data">
                <thead>
                    <tr>
                        <th scope="col">"Email"</th>
                        <th scope="col">"Role"</th>
                        <th scope="col">"Status"</th>
                        <th scope="col">"Joined"</th>
                    </tr>
                </thead>
                <tbody>
                    {users
                        .into_iter()
                        .map(|user| {
                            let email = user.email.clone();
                            view! {
                                <tr data-email=email>
                                    <td>{user.email}</td>
                                    <td>{if user.is_admin { "admin" } else { "user" }}</td>
                                    <td>{if user.disabled { "disabled" } else { "active" }}</td>
                                    <td>{user.created_on}</td>
                                </tr>
                            }
                        })
                        .collect_view()}
                </tbody>
            </table>
        </div>
    }
}
