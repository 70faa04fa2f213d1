//! Daily roll-ups of the ledger, updated with every ledger row (same
//! transaction), so dashboards sum days rather than individual calls.

use super::{format_day, ledger::LedgerRow};

/// Whether a ledger status counts as a failed call.
pub fn is_error(status: &str) -> bool {
    !matches!(status, "200" | "stopped")
}

/// Adds one ledger row to the roll-ups.
pub async fn record(conn: &mut sqlx::AnyConnection, row: &LedgerRow) -> Result<(), sqlx::Error> {
    let day = format_day(row.at);
    let errors = i64::from(is_error(&row.status));
    sqlx::query(
        "INSERT INTO rollup_daily_models (day, key_source, model, requests, errors, input_tokens, output_tokens, \
         cache_creation_tokens, cache_read_tokens, cost_micro_usd) VALUES ($1, $2, $3, 1, $4, $5, $6, $7, $8, $9) \
         ON CONFLICT (day, key_source, model) DO UPDATE SET requests = rollup_daily_models.requests + 1, \
         errors = rollup_daily_models.errors + excluded.errors, \
         input_tokens = rollup_daily_models.input_tokens + excluded.input_tokens, \
         output_tokens = rollup_daily_models.output_tokens + excluded.output_tokens, \
         cache_creation_tokens = rollup_daily_models.cache_creation_tokens + excluded.cache_creation_tokens, \
         cache_read_tokens = rollup_daily_models.cache_read_tokens + excluded.cache_read_tokens, \
         cost_micro_usd = rollup_daily_models.cost_micro_usd + excluded.cost_micro_usd",
    )
    .bind(&day)
    .bind(row.key_source)
    .bind(&row.model)
    .bind(errors)
    .bind(row.input_tokens)
    .bind(row.output_tokens)
    .bind(row.cache_creation_tokens)
    .bind(row.cache_read_tokens)
    .bind(row.cost_micro_usd)
    .execute(&mut *conn)
    .await?;
    let tokens =
        row.input_tokens + row.output_tokens + row.cache_creation_tokens + row.cache_read_tokens;
    sqlx::query(
        "INSERT INTO rollup_daily_users (day, user_id, key_source, requests, errors, tokens, cost_micro_usd, last_at) \
         VALUES ($1, $2, $3, 1, $4, $5, $6, $7) \
         ON CONFLICT (day, user_id, key_source) DO UPDATE SET requests = rollup_daily_users.requests + 1, \
         errors = rollup_daily_users.errors + excluded.errors, tokens = rollup_daily_users.tokens + excluded.tokens, \
         cost_micro_usd = rollup_daily_users.cost_micro_usd + excluded.cost_micro_usd, \
         last_at = CASE WHEN excluded.last_at > rollup_daily_users.last_at THEN excluded.last_at ELSE rollup_daily_users.last_at END",
    )
    .bind(&day)
    .bind(row.user_id)
    .bind(row.key_source)
    .bind(errors)
    .bind(tokens)
    .bind(row.cost_micro_usd)
    .bind(row.at)
    .execute(conn)
    .await?;
    Ok(())
}

/// Recomputes both roll-ups from the whole ledger (after a bulk load).
pub async fn rebuild(db: &super::Db, backend: super::Backend) -> Result<(), sqlx::Error> {
    let day = match backend {
        super::Backend::Sqlite => "strftime('%Y-%m-%d', at / 1000, 'unixepoch')",
        super::Backend::Postgres => {
            "to_char(to_timestamp(at / 1000) AT TIME ZONE 'UTC', 'YYYY-MM-DD')"
        }
    };
    let errors = "SUM(CASE WHEN status IN ('200', 'stopped') THEN 0 ELSE 1 END)";
    let mut tx = db.begin().await?;
    sqlx::query("DELETE FROM rollup_daily_models")
        .execute(&mut *tx)
        .await?;
    sqlx::query("DELETE FROM rollup_daily_users")
        .execute(&mut *tx)
        .await?;
    sqlx::query(&format!(
        "INSERT INTO rollup_daily_models SELECT {day}, key_source, model, COUNT(*), {errors}, \
         SUM(input_tokens), SUM(output_tokens), SUM(cache_creation_tokens), SUM(cache_read_tokens), SUM(cost_micro_usd) \
         FROM usage_ledger GROUP BY 1, 2, 3"
    ))
    .execute(&mut *tx)
    .await?;
    sqlx::query(&format!(
        "INSERT INTO rollup_daily_users SELECT {day}, user_id, key_source, COUNT(*), {errors}, \
         SUM(input_tokens + output_tokens + cache_creation_tokens + cache_read_tokens), SUM(cost_micro_usd), MAX(at) \
         FROM usage_ledger GROUP BY 1, 2, 3"
    ))
    .execute(&mut *tx)
    .await?;
    tx.commit().await
}
