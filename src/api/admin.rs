//! Admin-only server functions. Each checks the caller's role on the server
//! and answers 403 otherwise, whatever the UI shows.

use leptos::prelude::*;

use crate::{error::AppError, model::AdminUserSummary};

/// Accounts on this server, newest first (at most 200).
#[server(endpoint = "admin/users")]
pub async fn list_users() -> Result<Vec<AdminUserSummary>, AppError> {
    use super::context::{request_context, with_status};
    use crate::server::db;

    with_status(
        async {
            let ctx = request_context()?;
            ctx.require_admin()?;
            let users = db::users::list(&ctx.state.db, 200).await?;
            Ok(users
                .into_iter()
                .map(|user| AdminUserSummary {
                    id: user.id,
                    email: user.email.clone(),
                    is_admin: user.is_admin(),
                    disabled: user.disabled,
                    created_on: db::format_day(user.created_at),
                })
                .collect())
        }
        .await,
    )
}
