//! Daily roll-ups of the ledger, updated with every ledger row (same
//! transaction), so dashboards sum days rather than individual calls.

use super::{format_day, ledger::LedgerRow};
use crate::server::clock::DAY_MS;

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

/// Sums of one roll-up row.
#[derive(Default)]
struct ModelSums {
    requests: i64,
    errors: i64,
    input: i64,
    output: i64,
    cache_creation: i64,
    cache_read: i64,
    cost: i64,
    saved: i64,
}

#[derive(Default)]
struct UserSums {
    requests: i64,
    errors: i64,
    tokens: i64,
    cost: i64,
    last_at: i64,
}

/// Adds ledger rows to the roll-ups: rows are summed in memory first, so a
/// batch costs one upsert per (day, source, model), (day, user, source)
/// and (day, latency bucket) it touches, not one per call.
pub async fn record_many(
    conn: &mut sqlx::AnyConnection,
    rows: &[&LedgerRow],
) -> Result<(), sqlx::Error> {
    use std::collections::BTreeMap;
    // Keyed by the day's number, written out as a date once per roll-up
    // row rather than once per call.
    let mut by_model: BTreeMap<(i64, &str, &str), ModelSums> = BTreeMap::new();
    let mut by_user: BTreeMap<(i64, i64, &str), UserSums> = BTreeMap::new();
    let mut by_latency: BTreeMap<(i64, i64), i64> = BTreeMap::new();
    for row in rows {
        let day = row.at.div_euclid(DAY_MS);
        let errors = i64::from(is_error(&row.status));
        let m = by_model
            .entry((day, row.paid_by.as_str(), row.model.as_str()))
            .or_default();
        m.requests += 1;
        m.errors += errors;
        m.input += row.input_tokens;
        m.output += row.output_tokens;
        m.cache_creation += row.cache_creation_tokens;
        m.cache_read += row.cache_read_tokens;
        m.cost += row.cost_micro_usd;
        m.saved += row.saved_micro_usd;
        let u = by_user
            .entry((day, row.user_id, row.paid_by.as_str()))
            .or_default();
        u.requests += 1;
        u.errors += errors;
        u.tokens += row.input_tokens
            + row.output_tokens
            + row.cache_creation_tokens
            + row.cache_read_tokens;
        u.cost += row.cost_micro_usd;
        u.last_at = u.last_at.max(row.at);
        *by_latency
            .entry((day, latency_bucket(row.latency_ms)))
            .or_default() += 1;
    }
    for ((day, source, model), m) in &by_model {
        sqlx::query(
            "INSERT INTO rollup_daily_models (day, key_source, model, requests, errors, input_tokens, output_tokens, \
             cache_creation_tokens, cache_read_tokens, cost_micro_usd, saved_micro_usd) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) \
             ON CONFLICT (day, key_source, model) DO UPDATE SET requests = rollup_daily_models.requests + excluded.requests, \
             errors = rollup_daily_models.errors + excluded.errors, \
             input_tokens = rollup_daily_models.input_tokens + excluded.input_tokens, \
             output_tokens = rollup_daily_models.output_tokens + excluded.output_tokens, \
             cache_creation_tokens = rollup_daily_models.cache_creation_tokens + excluded.cache_creation_tokens, \
             cache_read_tokens = rollup_daily_models.cache_read_tokens + excluded.cache_read_tokens, \
             cost_micro_usd = rollup_daily_models.cost_micro_usd + excluded.cost_micro_usd, \
             saved_micro_usd = rollup_daily_models.saved_micro_usd + excluded.saved_micro_usd",
        )
        .bind(format_day(day * DAY_MS))
        .bind(*source)
        .bind(*model)
        .bind(m.requests)
        .bind(m.errors)
        .bind(m.input)
        .bind(m.output)
        .bind(m.cache_creation)
        .bind(m.cache_read)
        .bind(m.cost)
        .bind(m.saved)
        .execute(&mut *conn)
        .await?;
    }
    for ((day, user_id, source), u) in &by_user {
        sqlx::query(
            "INSERT INTO rollup_daily_users (day, user_id, key_source, requests, errors, tokens, cost_micro_usd, last_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
             ON CONFLICT (day, user_id, key_source) DO UPDATE SET requests = rollup_daily_users.requests + excluded.requests, \
             errors = rollup_daily_users.errors + excluded.errors, tokens = rollup_daily_users.tokens + excluded.tokens, \
             cost_micro_usd = rollup_daily_users.cost_micro_usd + excluded.cost_micro_usd, \
             last_at = CASE WHEN excluded.last_at > rollup_daily_users.last_at THEN excluded.last_at ELSE rollup_daily_users.last_at END",
        )
        .bind(format_day(day * DAY_MS))
        .bind(*user_id)
        .bind(*source)
        .bind(u.requests)
        .bind(u.errors)
        .bind(u.tokens)
        .bind(u.cost)
        .bind(u.last_at)
        .execute(&mut *conn)
        .await?;
    }
    for ((day, bucket), calls) in &by_latency {
        sqlx::query(
            "INSERT INTO rollup_daily_latency (day, bucket_ms, calls) VALUES ($1, $2, $3) \
             ON CONFLICT (day, bucket_ms) DO UPDATE SET calls = rollup_daily_latency.calls + excluded.calls",
        )
        .bind(format_day(day * DAY_MS))
        .bind(*bucket)
        .bind(*calls)
        .execute(&mut *conn)
        .await?;
    }
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
        "INSERT INTO rollup_daily_models (day, key_source, model, requests, errors, input_tokens, output_tokens, \
         cache_creation_tokens, cache_read_tokens, cost_micro_usd, saved_micro_usd) \
         SELECT {day}, key_source, model, COUNT(*), {errors}, \
         SUM(input_tokens), SUM(output_tokens), SUM(cache_creation_tokens), SUM(cache_read_tokens), SUM(cost_micro_usd), \
         SUM(saved_micro_usd) FROM usage_ledger GROUP BY 1, 2, 3"
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
