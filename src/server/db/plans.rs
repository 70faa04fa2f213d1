//! Plans: what a user may spend on the platform key.

use sqlx::Row;

use super::Db;
use crate::{model::caching::PromptCaching, server::config::FreePlanOverrides};

pub const FREE: &str = "free";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub id: i64,
    pub name: String,
    /// `None` = unlimited.
    pub requests_per_minute: Option<i64>,
    pub requests_per_day: Option<i64>,
    pub tokens_per_day: Option<i64>,
    pub models: Vec<String>,
    pub max_tokens: i64,
    /// Anthropic's server tools (billed per use) allowed on the platform key.
    pub allows_server_tools: bool,
    /// How its chat turns on the platform key use the prompt cache.
    pub prompt_caching: PromptCaching,
}

/// Free plan defaults when the environment says nothing.
pub const DEFAULT_REQUESTS_PER_DAY: i64 = 50;
pub const DEFAULT_TOKENS_PER_DAY: i64 = 200_000;
pub const DEFAULT_REQUESTS_PER_MINUTE: i64 = 10;
pub const DEFAULT_MODELS: &str = "claude-haiku-4-5";
pub const DEFAULT_MAX_TOKENS: i64 = 1024;

const COLUMNS: &str = "id, name, requests_per_minute, requests_per_day, tokens_per_day, models, \
     max_tokens, allows_server_tools, prompt_caching";

fn from_row(row: &sqlx::any::AnyRow) -> Result<Plan, sqlx::Error> {
    let models: String = row.try_get("models")?;
    let caching: String = row.try_get("prompt_caching")?;
    Ok(Plan {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        requests_per_minute: row.try_get("requests_per_minute")?,
        requests_per_day: row.try_get("requests_per_day")?,
        tokens_per_day: row.try_get("tokens_per_day")?,
        models: models
            .split(',')
            .map(str::trim)
            .filter(|m| !m.is_empty())
            .map(str::to_owned)
            .collect(),
        max_tokens: row.try_get("max_tokens")?,
        allows_server_tools: row.try_get::<i64, _>("allows_server_tools")? != 0,
        // Written only from the enum; anything else reads as the default.
        prompt_caching: PromptCaching::parse(&caching).unwrap_or_default(),
    })
}

/// Creates the free plan from the environment (or defaults) on a new
/// database; on later starts, values set in the environment win. One
/// transaction: an instance never sees the plan half overridden.
pub async fn ensure_free_plan(
    db: &Db,
    env: &FreePlanOverrides,
    now_ms: i64,
) -> Result<Plan, sqlx::Error> {
    let mut tx = db.begin().await?;
    sqlx::query(
        "INSERT INTO plans (name, requests_per_minute, requests_per_day, tokens_per_day, models, max_tokens, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (name) DO NOTHING",
    )
    .bind(FREE)
    .bind(env.requests_per_minute.map(i64::from).unwrap_or(DEFAULT_REQUESTS_PER_MINUTE))
    .bind(env.requests_per_day.map(i64::from).unwrap_or(DEFAULT_REQUESTS_PER_DAY))
    .bind(env.tokens_per_day.map(|t| t as i64).unwrap_or(DEFAULT_TOKENS_PER_DAY))
    .bind(env.models.clone().unwrap_or_else(|| DEFAULT_MODELS.to_owned()))
    .bind(env.max_tokens.map(i64::from).unwrap_or(DEFAULT_MAX_TOKENS))
    .bind(now_ms)
    .execute(&mut *tx)
    .await?;
    let overrides: [(&str, Option<i64>); 4] = [
        (
            "requests_per_minute",
            env.requests_per_minute.map(i64::from),
        ),
        ("requests_per_day", env.requests_per_day.map(i64::from)),
        ("tokens_per_day", env.tokens_per_day.map(|t| t as i64)),
        ("max_tokens", env.max_tokens.map(i64::from)),
    ];
    for (column, value) in overrides {
        if let Some(value) = value {
            sqlx::query(&format!("UPDATE plans SET {column} = $1 WHERE name = $2"))
                .bind(value)
                .bind(FREE)
                .execute(&mut *tx)
                .await?;
        }
    }
    if let Some(models) = &env.models {
        sqlx::query("UPDATE plans SET models = $1 WHERE name = $2")
            .bind(models)
            .bind(FREE)
            .execute(&mut *tx)
            .await?;
    }
    let plan = by_name(&mut *tx, FREE)
        .await?
        .ok_or(sqlx::Error::RowNotFound)?;
    tx.commit().await?;
    Ok(plan)
}

pub async fn by_name(db: impl super::Exec<'_>, name: &str) -> Result<Option<Plan>, sqlx::Error> {
    let sql = format!("SELECT {COLUMNS} FROM plans WHERE name = $1");
    let row = sqlx::query(&sql).bind(name).fetch_optional(db).await?;
    row.as_ref().map(from_row).transpose()
}

/// The user's plan; users without one are on the free plan.
pub async fn for_user(db: &Db, user_id: i64) -> Result<Plan, sqlx::Error> {
    let sql = format!(
        "SELECT {COLUMNS} FROM plans WHERE id = COALESCE((SELECT plan_id FROM users WHERE id = $1), \
         (SELECT id FROM plans WHERE name = $2))"
    );
    let row = sqlx::query(&sql)
        .bind(user_id)
        .bind(FREE)
        .fetch_one(db)
        .await?;
    from_row(&row)
}

pub async fn by_id(db: &Db, id: i64) -> Result<Option<Plan>, sqlx::Error> {
    let sql = format!("SELECT {COLUMNS} FROM plans WHERE id = $1");
    let row = sqlx::query(&sql).bind(id).fetch_optional(db).await?;
    row.as_ref().map(from_row).transpose()
}

/// Every plan with how many users are on it (users without a plan count as free).
pub async fn list_with_user_counts(db: &Db) -> Result<Vec<(Plan, i64)>, sqlx::Error> {
    let sql = format!(
        "SELECT {COLUMNS}, (SELECT COUNT(*) FROM users u WHERE u.plan_id = plans.id \
         OR (u.plan_id IS NULL AND plans.name = $1)) AS users FROM plans ORDER BY id"
    );
    let rows = sqlx::query(&sql).bind(FREE).fetch_all(db).await?;
    rows.iter()
        .map(|row| Ok((from_row(row)?, row.try_get("users")?)))
        .collect()
}

/// Creates (`plan.id == 0`) or updates a plan. Errors on a duplicate name.
pub async fn save(db: impl super::Exec<'_>, plan: &Plan, now_ms: i64) -> Result<Plan, sqlx::Error> {
    let models = plan.models.join(",");
    let row = if plan.id == 0 {
        let sql = format!(
            "INSERT INTO plans (name, requests_per_minute, requests_per_day, tokens_per_day, models, max_tokens, \
             allows_server_tools, prompt_caching, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
             RETURNING {COLUMNS}"
        );
        sqlx::query(&sql)
            .bind(&plan.name)
            .bind(plan.requests_per_minute)
            .bind(plan.requests_per_day)
            .bind(plan.tokens_per_day)
            .bind(&models)
            .bind(plan.max_tokens)
            .bind(i64::from(plan.allows_server_tools))
            .bind(plan.prompt_caching.as_str())
            .bind(now_ms)
            .fetch_one(db)
            .await?
    } else {
        let sql = format!(
            "UPDATE plans SET name = $1, requests_per_minute = $2, requests_per_day = $3, tokens_per_day = $4, \
             models = $5, max_tokens = $6, allows_server_tools = $7, prompt_caching = $8 WHERE id = $9 \
             RETURNING {COLUMNS}"
        );
        sqlx::query(&sql)
            .bind(&plan.name)
            .bind(plan.requests_per_minute)
            .bind(plan.requests_per_day)
            .bind(plan.tokens_per_day)
            .bind(&models)
            .bind(plan.max_tokens)
            .bind(i64::from(plan.allows_server_tools))
            .bind(plan.prompt_caching.as_str())
            .bind(plan.id)
            .fetch_one(db)
            .await?
    };
    from_row(&row)
}
