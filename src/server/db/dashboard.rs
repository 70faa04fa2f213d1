//! The admin dashboard's numbers, from the daily roll-ups (and the ledger
//! for latency percentiles). Sums are cast to BIGINT: Postgres widens them.

use sqlx::Row;

use super::Db;
use crate::model::{
    admin::{DayPoint, ModelPoint, TotalsView},
    domain::{PaidBy, Role},
};

/// Whole UTC days, `from` and `to` included, plus the same range in ms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DayRange {
    pub from_day: String,
    pub to_day: String,
    pub from_ms: i64,
    pub until_ms: i64,
}

const SUMS: &str = "CAST(COALESCE(SUM(requests), 0) AS BIGINT) AS requests, \
    CAST(COALESCE(SUM(errors), 0) AS BIGINT) AS errors, \
    CAST(COALESCE(SUM(CASE WHEN key_source = 'platform' THEN requests ELSE 0 END), 0) AS BIGINT) AS platform_requests, \
    CAST(COALESCE(SUM(CASE WHEN key_source = 'user' THEN requests ELSE 0 END), 0) AS BIGINT) AS user_requests, \
    CAST(COALESCE(SUM(input_tokens), 0) AS BIGINT) AS input_tokens, \
    CAST(COALESCE(SUM(output_tokens), 0) AS BIGINT) AS output_tokens, \
    CAST(COALESCE(SUM(cache_creation_tokens + cache_read_tokens), 0) AS BIGINT) AS cache_tokens, \
    CAST(COALESCE(SUM(CASE WHEN key_source = 'platform' THEN cost_micro_usd ELSE 0 END), 0) AS BIGINT) AS platform_cost, \
    CAST(COALESCE(SUM(CASE WHEN key_source = 'user' THEN cost_micro_usd ELSE 0 END), 0) AS BIGINT) AS user_cost, \
    CAST(COALESCE(SUM(saved_micro_usd), 0) AS BIGINT) AS saved";

pub async fn totals(db: &Db, range: &DayRange) -> Result<TotalsView, sqlx::Error> {
    let sql = format!("SELECT {SUMS} FROM rollup_daily_models WHERE day >= $1 AND day <= $2");
    let row = sqlx::query(&sql)
        .bind(&range.from_day)
        .bind(&range.to_day)
        .fetch_one(db)
        .await?;
    let active_users: i64 = sqlx::query_scalar(
        "SELECT COUNT(DISTINCT user_id) FROM rollup_daily_users WHERE day >= $1 AND day <= $2",
    )
    .bind(&range.from_day)
    .bind(&range.to_day)
    .fetch_one(db)
    .await?;
    Ok(TotalsView {
        requests: row.try_get("requests")?,
        errors: row.try_get("errors")?,
        platform_requests: row.try_get("platform_requests")?,
        user_requests: row.try_get("user_requests")?,
        input_tokens: row.try_get("input_tokens")?,
        output_tokens: row.try_get("output_tokens")?,
        cache_tokens: row.try_get("cache_tokens")?,
        platform_cost: row.try_get("platform_cost")?,
        user_cost: row.try_get("user_cost")?,
        saved_by_caching: row.try_get("saved")?,
        active_users,
    })
}

/// Requests and cost per day and key source (days without calls are absent).
pub async fn per_day(db: &Db, range: &DayRange) -> Result<Vec<DayPoint>, sqlx::Error> {
    let sql = format!(
        "SELECT day, {SUMS} FROM rollup_daily_models WHERE day >= $1 AND day <= $2 GROUP BY day ORDER BY day"
    );
    let rows = sqlx::query(&sql)
        .bind(&range.from_day)
        .bind(&range.to_day)
        .fetch_all(db)
        .await?;
    rows.iter()
        .map(|row| {
            Ok(DayPoint {
                day: row.try_get("day")?,
                platform_requests: row.try_get("platform_requests")?,
                user_requests: row.try_get("user_requests")?,
                platform_cost: row.try_get("platform_cost")?,
                user_cost: row.try_get("user_cost")?,
                saved_by_caching: row.try_get("saved")?,
            })
        })
        .collect()
}

pub async fn top_models(
    db: &Db,
    range: &DayRange,
    limit: i64,
) -> Result<Vec<ModelPoint>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT model, CAST(SUM(requests) AS BIGINT) AS requests, \
         CAST(SUM(input_tokens + output_tokens + cache_creation_tokens + cache_read_tokens) AS BIGINT) AS tokens, \
         CAST(SUM(cost_micro_usd) AS BIGINT) AS cost \
         FROM rollup_daily_models WHERE day >= $1 AND day <= $2 GROUP BY model ORDER BY requests DESC, model LIMIT $3",
    )
    .bind(&range.from_day)
    .bind(&range.to_day)
    .bind(limit)
    .fetch_all(db)
    .await?;
    rows.iter()
        .map(|row| {
            Ok(ModelPoint {
                model: row.try_get("model")?,
                requests: row.try_get("requests")?,
                tokens: row.try_get("tokens")?,
                cost: row.try_get("cost")?,
            })
        })
        .collect()
}

/// Latency p50 and p95 in ms of the calls in the range (None without
/// calls), to the width of a latency bucket and rounded up.
pub async fn latency_percentiles(
    db: &Db,
    range: &DayRange,
) -> Result<Option<(i64, i64)>, sqlx::Error> {
    let buckets: Vec<(i64, i64)> = sqlx::query_as(
        "SELECT bucket_ms, CAST(SUM(calls) AS BIGINT) FROM rollup_daily_latency \
         WHERE day >= $1 AND day <= $2 GROUP BY bucket_ms ORDER BY bucket_ms",
    )
    .bind(&range.from_day)
    .bind(&range.to_day)
    .fetch_all(db)
    .await?;
    Ok(percentiles(&buckets))
}

/// p50 and p95 from (bucket, calls) pairs sorted by bucket.
fn percentiles(buckets: &[(i64, i64)]) -> Option<(i64, i64)> {
    let total: i64 = buckets.iter().map(|b| b.1).sum();
    if total == 0 {
        return None;
    }
    let at = |share: f64| {
        let rank = (total as f64 * share).ceil() as i64;
        let mut seen = 0;
        for (bucket, calls) in buckets {
            seen += calls;
            if seen >= rank {
                return super::rollups::bucket_upper_edge(*bucket);
            }
        }
        buckets
            .last()
            .map_or(0, |b| super::rollups::bucket_upper_edge(b.0))
    };
    Some((at(0.5), at(0.95)))
}

/// One user in the users table, with their numbers for the range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserUsage {
    pub id: i64,
    pub email: String,
    pub is_admin: bool,
    pub disabled: bool,
    pub plan: String,
    /// `none`, `ok` or `rejected`.
    pub key_status: String,
    pub platform_requests: i64,
    pub user_requests: i64,
    pub cost: i64,
    pub last_active: Option<i64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserSort {
    Email,
    Requests,
    Cost,
    LastActive,
}

impl UserSort {
    fn column(self) -> &'static str {
        match self {
            UserSort::Email => "u.email_norm",
            UserSort::Requests => {
                "(COALESCE(r.platform_requests, 0) + COALESCE(r.user_requests, 0))"
            }
            UserSort::Cost => "COALESCE(r.cost, 0)",
            UserSort::LastActive => "COALESCE(r.last_at, 0)",
        }
    }
}

pub struct UserQuery<'a> {
    pub range: &'a DayRange,
    pub search: &'a str,
    pub sort: UserSort,
    pub descending: bool,
    pub limit: i64,
    pub offset: i64,
}

fn like_pattern(search: &str) -> String {
    let escaped: String = search
        .trim()
        .to_lowercase()
        .chars()
        .flat_map(|c| match c {
            '%' | '_' | '\\' => vec!['\\', c],
            c => vec![c],
        })
        .collect();
    format!("%{escaped}%")
}

/// A page of users with their usage in the range, and how many match.
pub async fn users(db: &Db, query: &UserQuery<'_>) -> Result<(Vec<UserUsage>, i64), sqlx::Error> {
    let pattern = like_pattern(query.search);
    let direction = if query.descending { "DESC" } else { "ASC" };
    let sql = format!(
        "SELECT u.id, u.email, u.role, u.disabled, COALESCE(p.name, 'free') AS plan, \
         CASE WHEN k.id IS NULL THEN 'none' WHEN k.rejected_at IS NULL THEN 'ok' ELSE 'rejected' END AS key_status, \
         COALESCE(r.platform_requests, 0) AS platform_requests, COALESCE(r.user_requests, 0) AS user_requests, \
         COALESCE(r.cost, 0) AS cost, r.last_at \
         FROM users u \
         LEFT JOIN plans p ON p.id = u.plan_id \
         LEFT JOIN user_api_keys k ON k.user_id = u.id AND k.provider = 'anthropic' \
         LEFT JOIN (SELECT user_id, \
             CAST(SUM(CASE WHEN key_source = 'platform' THEN requests ELSE 0 END) AS BIGINT) AS platform_requests, \
             CAST(SUM(CASE WHEN key_source = 'user' THEN requests ELSE 0 END) AS BIGINT) AS user_requests, \
             CAST(SUM(cost_micro_usd) AS BIGINT) AS cost, MAX(last_at) AS last_at \
             FROM rollup_daily_users WHERE day >= $1 AND day <= $2 GROUP BY user_id) r ON r.user_id = u.id \
         WHERE u.email_norm LIKE $3 ESCAPE '\\' \
         ORDER BY {} {direction}, u.id {direction} LIMIT $4 OFFSET $5",
        query.sort.column()
    );
    let rows = sqlx::query(&sql)
        .bind(&query.range.from_day)
        .bind(&query.range.to_day)
        .bind(&pattern)
        .bind(query.limit)
        .bind(query.offset)
        .fetch_all(db)
        .await?;
    let total: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM users WHERE email_norm LIKE $1 ESCAPE '\\'")
            .bind(&pattern)
            .fetch_one(db)
            .await?;
    let users = rows
        .iter()
        .map(|row| {
            Ok(UserUsage {
                id: row.try_get("id")?,
                email: row.try_get("email")?,
                is_admin: super::word::<Role>(row, "role")? == Role::Admin,
                disabled: row.try_get::<i64, _>("disabled")? != 0,
                plan: row.try_get("plan")?,
                key_status: row.try_get("key_status")?,
                platform_requests: row.try_get("platform_requests")?,
                user_requests: row.try_get("user_requests")?,
                cost: row.try_get("cost")?,
                last_active: row.try_get("last_at")?,
            })
        })
        .collect::<Result<_, sqlx::Error>>()?;
    Ok((users, total))
}

/// One user's usage per day and key source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserDay {
    pub day: String,
    pub paid_by: PaidBy,
    pub requests: i64,
    pub tokens: i64,
    pub cost: i64,
}

pub async fn user_days(
    db: &Db,
    user_id: i64,
    range: &DayRange,
) -> Result<Vec<UserDay>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT day, key_source, requests, tokens, cost_micro_usd FROM rollup_daily_users \
         WHERE user_id = $1 AND day >= $2 AND day <= $3 ORDER BY day DESC, key_source",
    )
    .bind(user_id)
    .bind(&range.from_day)
    .bind(&range.to_day)
    .fetch_all(db)
    .await?;
    rows.iter()
        .map(|row| {
            Ok(UserDay {
                day: row.try_get("day")?,
                paid_by: super::word(row, "key_source")?,
                requests: row.try_get("requests")?,
                tokens: row.try_get("tokens")?,
                cost: row.try_get("cost_micro_usd")?,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_come_from_cumulative_bucket_counts() {
        assert_eq!(percentiles(&[]), None);
        // 50 calls at 200-250 ms, 45 at 1000-1250 ms, 5 at 5000-5250 ms.
        let buckets = [(200, 50), (1_000, 45), (5_000, 5)];
        assert_eq!(percentiles(&buckets), Some((250, 1_250)));
        assert_eq!(percentiles(&[(0, 1)]), Some((10, 10)));
    }

    #[test]
    fn search_patterns_escape_wildcards() {
        assert_eq!(like_pattern(" Ada "), "%ada%");
        assert_eq!(like_pattern("a_b%"), "%a\\_b\\%%");
    }
}
