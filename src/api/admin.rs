//! Admin-only server functions. Each checks the caller's role on the server
//! and answers 403 otherwise, whatever the UI shows.
// A server function takes one argument per form field, and the plan form
// has more fields than clippy's default limit (the browser-side stub the
// macro generates cannot carry an item-level allow).
#![allow(clippy::too_many_arguments)]

use leptos::prelude::*;

use crate::{
    error::AppError,
    model::admin::{AuditPage, Dashboard, PeriodQuery, PlanView, UserDetail, UsersPage},
};

/// Totals, per-day series, top models and latency for a period.
#[server(endpoint = "admin/dashboard")]
pub async fn load_dashboard(#[server(default)] period: PeriodQuery) -> Result<Dashboard, AppError> {
    use super::context::as_admin;
    use crate::server::admin::{dashboard, period as periods};

    as_admin(async |ctx, _admin| {
        let range = periods::resolve(&period, ctx.state.clock.now_ms())?;
        Ok(dashboard::load(&ctx.state.db, &range).await?)
    })
    .await
}

/// A page of users with their numbers for the period.
#[server(endpoint = "admin/users")]
pub async fn list_users(
    #[server(default)] period: PeriodQuery,
    #[server(default)] search: String,
    #[server(default)] sort: String,
    #[server(default)] page: i64,
) -> Result<UsersPage, AppError> {
    use super::context::as_admin;
    use crate::server::admin::{dashboard, period as periods};

    as_admin(async |ctx, _admin| {
        let range = periods::resolve(&period, ctx.state.clock.now_ms())?;
        Ok(dashboard::users_page(&ctx.state.db, &range, &search, &sort, page).await?)
    })
    .await
}

#[server(endpoint = "admin/user")]
pub async fn load_user_detail(
    id: i64,
    #[server(default)] period: PeriodQuery,
) -> Result<UserDetail, AppError> {
    use super::context::as_admin;
    use crate::server::admin::{dashboard, period as periods};

    as_admin(async |ctx, _admin| {
        let now_ms = ctx.state.clock.now_ms();
        let range = periods::resolve(&period, now_ms)?;
        dashboard::user_detail(&ctx.state.db, id, &range, now_ms)
            .await?
            .ok_or(AppError::NotFound)
    })
    .await
}

#[server(endpoint = "admin/set_plan")]
pub async fn set_user_plan(user_id: i64, plan_id: i64) -> Result<(), AppError> {
    use super::context::as_admin;
    use crate::server::admin::management;

    as_admin(async |ctx, admin| {
        management::set_plan(&ctx.state, admin, user_id, plan_id, &ctx.ip).await
    })
    .await
}

#[server(endpoint = "admin/set_role")]
pub async fn set_user_role(user_id: i64, admin: bool) -> Result<(), AppError> {
    use super::context::as_admin;
    use crate::server::admin::management;

    as_admin(async |ctx, actor| {
        management::set_role(&ctx.state, actor, user_id, admin, &ctx.ip).await
    })
    .await
}

#[server(endpoint = "admin/set_disabled")]
pub async fn set_user_disabled(user_id: i64, disabled: bool) -> Result<(), AppError> {
    use super::context::as_admin;
    use crate::server::admin::management;

    as_admin(async |ctx, admin| {
        management::set_disabled(&ctx.state, admin, user_id, disabled, &ctx.ip).await
    })
    .await
}

#[server(endpoint = "admin/plans")]
pub async fn list_plans() -> Result<Vec<PlanView>, AppError> {
    use super::context::as_admin;
    use crate::server::admin::plans;

    as_admin(async |ctx, _admin| plans::list(&ctx.state).await).await
}

/// Creates a plan (no `id`) or edits one. Empty limits mean unlimited.
#[server(endpoint = "admin/save_plan")]
pub async fn save_plan(
    id: Option<i64>,
    name: String,
    requests_per_minute: String,
    requests_per_day: String,
    tokens_per_day: String,
    #[server(default)] models: Vec<String>,
    max_tokens: String,
    #[server(default)] allows_server_tools: Option<String>,
    #[server(default)] prompt_caching: String,
) -> Result<PlanView, AppError> {
    use super::context::as_admin;
    use crate::server::admin::plans::{self, PlanForm};

    as_admin(async |ctx, admin| {
        let form = PlanForm {
            id,
            name,
            requests_per_minute,
            requests_per_day,
            tokens_per_day,
            models,
            max_tokens,
            allows_server_tools: allows_server_tools.is_some(),
            prompt_caching,
        };
        plans::save(&ctx.state, admin, &form, &ctx.ip).await
    })
    .await
}

#[server(endpoint = "admin/audit")]
pub async fn audit_log(
    #[server(default)] action: String,
    #[server(default)] email: String,
    #[server(default)] page: i64,
) -> Result<AuditPage, AppError> {
    use super::context::as_admin;
    use crate::server::admin::audit;

    as_admin(async |ctx, _admin| Ok(audit::page(&ctx.state.db, &action, &email, page).await?)).await
}
