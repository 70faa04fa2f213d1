//! Daily roll-ups of the ledger, updated with every ledger row (same
//! transaction), so dashboards sum days rather than individual calls.

use super::{format_day, ledger::LedgerRow};

/// Whether a ledger status counts as a failed call.
pub fn is_error(status: &str) -> bool {
    !matches!(status, "200" | "stopped")
}

/// The latency bucket (its lower edge, ms) a call falls in; the SQL in the
/// migration and in `rebuild` computes the same.
pub fn latency_bucket(ms: i64) -> i64 {
    match ms {
        ..=0 => 0,
        1..=99 => ms / 10 * 10,
        100..=999 => ms / 50 * 50,
        1_000..=9_999 => ms / 250 * 250,
        10_000..=119_999 => ms / 5_000 * 5_000,
        _ => 120_000,
    }
}

/// The upper edge of a bucket, reported as the percentile (never optimistic).
pub fn bucket_upper_edge(lower: i64) -> i64 {
    match lower {
        ..=99 => lower + 10,
        100..=999 => lower + 50,
        1_000..=9_999 => lower + 250,
        10_000..=119_999 => lower + 5_000,
        _ => lower,
    }
}

const LATENCY_BUCKET_SQL: &str = "CASE WHEN latency_ms < 100 THEN latency_ms / 10 * 10 \
    WHEN latency_ms < 1000 THEN latency_ms / 50 * 50 WHEN latency_ms < 10000 THEN latency_ms / 250 * 250 \
    WHEN latency_ms < 120000 THEN latency_ms / 5000 * 5000 ELSE 120000 END";

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
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "INSERT INTO rollup_daily_latency (day, bucket_ms, calls) VALUES ($1, $2, 1) \
         ON CONFLICT (day, bucket_ms) DO UPDATE SET calls = rollup_daily_latency.calls + 1",
    )
    .bind(&day)
    .bind(latency_bucket(row.latency_ms))
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
    sqlx::query("DELETE FROM rollup_daily_latency")
        .execute(&mut *tx)
        .await?;
    sqlx::query(&format!(
        "INSERT INTO rollup_daily_latency SELECT {day}, {LATENCY_BUCKET_SQL}, COUNT(*) FROM usage_ledger GROUP BY 1, 2"
    ))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_widen_with_latency() {
        assert_eq!(latency_bucket(7), 0);
        assert_eq!(latency_bucket(99), 90);
        assert_eq!(latency_bucket(120), 100);
        assert_eq!(latency_bucket(1_234), 1_000);
        assert_eq!(latency_bucket(59_000), 55_000);
        assert_eq!(latency_bucket(600_000), 120_000);
        assert_eq!(bucket_upper_edge(latency_bucket(1_234)), 1_250);
        assert_eq!(bucket_upper_edge(latency_bucket(5)), 10);
    }
}
