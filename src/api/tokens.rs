//! Personal gateway tokens on the settings page. A new token travels to the
//! browser exactly once, in the answer to "Create token".

use leptos::prelude::*;

use crate::{
    error::AppError,
    model::{NewToken, TokenView},
};

#[cfg(feature = "ssr")]
fn view_of(row: &crate::server::db::api_tokens::TokenRow) -> TokenView {
    use crate::server::db::{format_day, format_time};
    TokenView {
        id: row.id,
        name: row.name.clone(),
        prefix: row.prefix.clone(),
        created_on: format_day(row.created_at),
        last_used: row.last_used_at.map(format_time),
    }
}

#[server(endpoint = "tokens/list")]
pub async fn list_tokens() -> Result<Vec<TokenView>, AppError> {
    use super::context::as_user;
    use crate::server::tokens;

    as_user(async |ctx, user| {
        let rows = tokens::list_tokens(&ctx.state, user.id).await?;
        Ok(rows.iter().map(view_of).collect())
    })
    .await
}

#[server(endpoint = "tokens/create")]
pub async fn create_token(name: String) -> Result<NewToken, AppError> {
    use super::context::as_user;
    use crate::server::tokens;
    use secrecy::ExposeSecret;

    as_user(async |ctx, user| {
        let now_ms = ctx.state.clock.now_ms();
        let created =
            tokens::create_token(&ctx.state.db, user, &name, Some(&ctx.ip), now_ms).await?;
        // For the setup snippets: which models a tool must be told to
        // use (on the user's own key, any: nothing to set).
        let plan_models = match crate::server::routing::route_call(&ctx.state, user).await {
            Ok(routed) => routed.plan().map(|plan| plan.models.clone()),
            Err(_) => None,
        };
        Ok(NewToken {
            token: created.token.expose_secret().to_owned(),
            view: view_of(&created.row),
            plan_models,
        })
    })
    .await
}

#[server(endpoint = "tokens/revoke")]
pub async fn revoke_token(id: i64) -> Result<(), AppError> {
    use super::context::as_user;
    use crate::server::tokens;

    as_user(async |ctx, user| tokens::revoke_token(&ctx.state, user, id, &ctx.ip).await).await
}
