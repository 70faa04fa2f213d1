//! The user's own usage: today's use against the plan, and recent calls.

use leptos::prelude::*;

use crate::{error::AppError, model::UsageSummary};

#[server(endpoint = "usage/mine")]
pub async fn my_usage() -> Result<UsageSummary, AppError> {
    use super::context::as_user;
    use crate::server::{
        clock::{human_duration, next_utc_midnight, utc_day},
        db::{ledger, plans, usage, user_keys},
        user_keys::ANTHROPIC,
    };

    as_user(async |ctx, user| {
        let db = &ctx.state.db;
        let now = ctx.state.clock.now_ms();
        let plan = plans::for_user(db, user.id).await?;
        let (requests_today, tokens_today) = usage::today(db, user.id, &utc_day(now)).await?;
        let has_own_key = user_keys::find(db, user.id, ANTHROPIC)
            .await?
            .is_some_and(|k| k.rejected_at.is_none());
        let recent = ledger::recent_for_user(db, user.id, 20)
            .await?
            .into_iter()
            .map(|row| row.into_summary())
            .collect();
        let sessions = ledger::sessions_for_user(db, user.id, 20, now)
            .await?
            .into_iter()
            .map(|session| session.into_summary())
            .collect();
        let today_ms = now - now.rem_euclid(crate::server::clock::DAY_MS);
        let saved_today = ledger::saved_since(db, user.id, today_ms).await?;
        let saved_this_month =
            ledger::saved_since(db, user.id, crate::server::clock::month_start_ms(now)).await?;
        Ok(UsageSummary {
            plan: plan.name,
            has_own_key,
            requests_today,
            requests_per_day: plan.requests_per_day,
            tokens_today,
            tokens_per_day: plan.tokens_per_day,
            requests_per_minute: plan.requests_per_minute,
            max_tokens: plan.max_tokens,
            resets_in: human_duration(next_utc_midnight(now) - now),
            recent,
            sessions,
            saved_today,
            saved_this_month,
        })
    })
    .await
}
