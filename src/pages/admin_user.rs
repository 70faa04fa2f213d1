//! `/admin/users/{id}`: one user's days and recent calls, and what an admin
//! can change: plan, role, enabled.

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_params_map;

use crate::{
    api::admin::{list_plans, load_user_detail, SetUserDisabled, SetUserPlan, SetUserRole},
    components::{
        admin::{nav::AdminNav, period::use_period},
        alert::{action_error, ErrorAlert},
        chat::message::format_usd,
        guards::RequireAdmin,
        usage_section::{RecentCalls, SessionsTable},
    },
    model::{
        admin::{AdminUserRow, PlanView, UserDayRow, UserDetail},
        domain::PaidBy,
    },
};

#[component]
pub fn AdminUserPage() -> impl IntoView {
    let params = use_params_map();
    let id = Memo::new(move |_| params.with(|p| p.get("id").and_then(|id| id.parse::<i64>().ok())));
    let period = use_period();
    let set_plan = ServerAction::<SetUserPlan>::new();
    let set_role = ServerAction::<SetUserRole>::new();
    let set_disabled = ServerAction::<SetUserDisabled>::new();
    let detail = Resource::new(
        move || {
            (
                id.get(),
                period.get(),
                set_plan.version().get() + set_role.version().get() + set_disabled.version().get(),
            )
        },
        |(id, period, _)| async move {
            match id {
                Some(id) => load_user_detail(id, period).await,
                None => Err(crate::error::AppError::NotFound),
            }
        },
    );
    let plans = Resource::new(|| (), |_| list_plans());
    view! {
        <Title text="User · Admin" />
        <RequireAdmin>
            <div class="admin">
                <AdminNav current="" />
                <Transition fallback=|| view! { <p class="muted" aria-busy="true">"Loading…"</p> }>
                    {move || detail.get().map(|result| match result {
                        Ok(detail) => {
                            let plans = plans.get().and_then(Result::ok).unwrap_or_default();
                            view! { <UserView detail plans set_plan set_role set_disabled /> }.into_any()
                        }
                        Err(err) => view! { <p class="alert alert-error" role="alert">{err.to_string()}</p> }.into_any(),
                    })}
                </Transition>
                <ErrorAlert message=action_error(set_plan) />
                <ErrorAlert message=action_error(set_role) />
                <ErrorAlert message=action_error(set_disabled) />
            </div>
        </RequireAdmin>
    }
}

fn confirm(message: &str) -> bool {
    window().confirm_with_message(message).unwrap_or(false)
}

#[component]
fn UserView(
    detail: UserDetail,
    plans: Vec<PlanView>,
    set_plan: ServerAction<SetUserPlan>,
    set_role: ServerAction<SetUserRole>,
    set_disabled: ServerAction<SetUserDisabled>,
) -> impl IntoView {
    let user = detail.user.clone();
    view! {
        <section class="card" aria-labelledby="user-heading">
            <h1 id="user-heading">{user.email.clone()}</h1>
            <p class="muted">
                {format!(
                    "{} · plan {} · key {} · {}",
                    if user.is_admin { "admin" } else { "user" },
                    user.plan,
                    user.key_status,
                    if user.disabled { "disabled" } else { "active" }
                )}
            </p>
            <ManageUser user plans current_plan=detail.plan_id set_plan set_role set_disabled />
            <h2>"Usage by day"</h2>
            <UserDays days=detail.days />
            <h2>"Recent calls"</h2>
            {if detail.recent.is_empty() {
                view! { <p class="muted">"No calls yet."</p> }.into_any()
            } else {
                view! { <RecentCalls calls=detail.recent name_payer=PaidBy::as_str /> }.into_any()
            }}
            <h2>"Claude Code sessions"</h2>
            <SessionsTable sessions=detail.sessions />
        </section>
    }
}

/// The admin's controls: plan, role, account on or off (the last two ask
/// first where they take something away).
#[component]
fn ManageUser(
    user: AdminUserRow,
    plans: Vec<PlanView>,
    current_plan: i64,
    set_plan: ServerAction<SetUserPlan>,
    set_role: ServerAction<SetUserRole>,
    set_disabled: ServerAction<SetUserDisabled>,
) -> impl IntoView {
    let user_id = user.id;
    let is_admin = user.is_admin;
    let disabled = user.disabled;
    let chosen_plan = RwSignal::new(current_plan);
    let on_plan = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        set_plan.dispatch(SetUserPlan {
            user_id,
            plan_id: chosen_plan.get_untracked(),
        });
    };
    let role_email = user.email.clone();
    let toggle_role = move |_| {
        if is_admin && !confirm(&format!("Remove admin rights from {role_email}?")) {
            return;
        }
        set_role.dispatch(SetUserRole {
            user_id,
            admin: !is_admin,
        });
    };
    let status_email = user.email;
    let toggle_disabled = move |_| {
        if !disabled
            && !confirm(&format!(
                "Disable {status_email}? Their sessions end and their API tokens stop working at once."
            ))
        {
            return;
        }
        set_disabled.dispatch(SetUserDisabled {
            user_id,
            disabled: !disabled,
        });
    };
    view! {
        <div class="manage">
            <form on:submit=on_plan class="inline-form">
                <label for="plan-select">"Plan"</label>
                <select
                    id="plan-select"
                    name="plan_id"
                    on:change=move |ev| {
                        if let Ok(id) = event_target_value(&ev).parse() {
                            chosen_plan.set(id);
                        }
                    }
                >
                    {plans.into_iter().map(|plan| {
                        let selected = plan.id == current_plan;
                        view! { <option value=plan.id.to_string() selected=selected>{plan.name}</option> }
                    }).collect_view()}
                </select>
                <button type="submit" class="button small-plain">"Change plan"</button>
            </form>
            <button type="button" class="button small-plain" on:click=toggle_role>
                {if is_admin { "Remove admin" } else { "Make admin" }}
            </button>
            <button type="button" class=if disabled { "button small-plain" } else { "button danger" } on:click=toggle_disabled>
                {if disabled { "Enable user" } else { "Disable user" }}
            </button>
        </div>
    }
}

#[component]
fn UserDays(days: Vec<UserDayRow>) -> impl IntoView {
    if days.is_empty() {
        return view! { <p class="muted">"No calls in this period."</p> }.into_any();
    }
    view! {
        <div class="table-wrap" tabindex="0">
            <table class="data">
                <thead><tr><th scope="col">"Day"</th><th scope="col">"Paid by"</th><th scope="col">"Requests"</th><th scope="col">"Tokens"</th><th scope="col">"Cost"</th></tr></thead>
                <tbody>
                    {days.into_iter().map(|d| view! {
                        <tr><td>{d.day}</td><td>{d.paid_by.as_str()}</td><td>{d.requests}</td><td>{d.tokens}</td><td>{format_usd(d.cost)}</td></tr>
                    }).collect_view()}
                </tbody>
            </table>
        </div>
    }
    .into_any()
}
