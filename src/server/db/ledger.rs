//! The usage ledger: exactly one row per upstream call.

use super::Db;

#[derive(Debug, Clone, Default)]
pub struct LedgerRow {
    pub at: i64,
    pub user_id: i64,
    pub conversation_id: Option<i64>,
    pub message_id: Option<i64>,
    pub token_id: Option<i64>,
    pub key_source: &'static str,
    pub model: String,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub cache_creation_tokens: i64,
    pub cache_read_tokens: i64,
    pub cost_micro_usd: i64,
    /// HTTP status of the upstream answer, or `stopped`, `timeout`, …
    pub status: String,
    pub error_type: Option<String>,
    pub latency_ms: i64,
    pub ttft_ms: Option<i64>,
    pub request_id: Option<String>,
}

impl LedgerRow {
    /// Every token the call was billed for.
    pub fn total_tokens(&self) -> i64 {
        self.input_tokens + self.output_tokens + self.cache_creation_tokens + self.cache_read_tokens
    }

    /// The row as a user's (or an admin's) list of recent calls shows it.
    pub fn into_summary(self) -> crate::model::CallSummary {
        crate::model::CallSummary {
            at: super::format_time(self.at),
            model: self.model,
            paid_by: self.key_source.to_owned(),
            input_tokens: self.input_tokens,
            output_tokens: self.output_tokens,
            cost_micro_usd: self.cost_micro_usd,
            status: self.status,
        }
    }
}

/// Rows per INSERT statement (17 parameters each, under both engines' limits).
const ROWS_PER_INSERT: usize = 500;

/// Inserts rows with as few statements as possible.
pub async fn insert_many(
    conn: &mut sqlx::AnyConnection,
    rows: &[&LedgerRow],
) -> Result<(), sqlx::Error> {
    for chunk in rows.chunks(ROWS_PER_INSERT) {
        let values = (0..chunk.len())
            .map(|i| {
                let params: Vec<String> = (1..=17).map(|n| format!("${}", i * 17 + n)).collect();
                format!("({})", params.join(", "))
            })
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!(
            "INSERT INTO usage_ledger (at, user_id, conversation_id, message_id, token_id, key_source, model, \
             input_tokens, output_tokens, cache_creation_tokens, cache_read_tokens, cost_micro_usd, status, \
             error_type, latency_ms, ttft_ms, request_id) VALUES {values}"
        );
        let mut query = sqlx::query(&sql);
        for row in chunk {
            query = query
                .bind(row.at)
                .bind(row.user_id)
                .bind(row.conversation_id)
                .bind(row.message_id)
                .bind(row.token_id)
                .bind(row.key_source)
                .bind(&row.model)
                .bind(row.input_tokens)
                .bind(row.output_tokens)
                .bind(row.cache_creation_tokens)
                .bind(row.cache_read_tokens)
                .bind(row.cost_micro_usd)
                .bind(&row.status)
                .bind(&row.error_type)
                .bind(row.latency_ms)
                .bind(row.ttft_ms)
                .bind(&row.request_id);
        }
        query.execute(&mut *conn).await?;
    }
    Ok(())
}

/// A user's most recent calls, newest first.
pub async fn recent_for_user(
    db: &Db,
    user_id: i64,
    limit: i64,
) -> Result<Vec<LedgerRow>, sqlx::Error> {
    use sqlx::Row;
    let rows = sqlx::query(
        "SELECT at, key_source, model, input_tokens, output_tokens, cache_creation_tokens, cache_read_tokens, \
         cost_micro_usd, status, error_type, latency_ms FROM usage_ledger WHERE user_id = $1 ORDER BY id DESC LIMIT $2",
    )
    .bind(user_id)
    .bind(limit)
    .fetch_all(db)
    .await?;
    rows.iter()
        .map(|r| {
            let source: String = r.try_get("key_source")?;
            Ok(LedgerRow {
                at: r.try_get("at")?,
                user_id,
                key_source: if source == "user" { "user" } else { "platform" },
                model: r.try_get("model")?,
                input_tokens: r.try_get("input_tokens")?,
                output_tokens: r.try_get("output_tokens")?,
                cache_creation_tokens: r.try_get("cache_creation_tokens")?,
                cache_read_tokens: r.try_get("cache_read_tokens")?,
                cost_micro_usd: r.try_get("cost_micro_usd")?,
                status: r.try_get("status")?,
                error_type: r.try_get("error_type")?,
                latency_ms: r.try_get("latency_ms")?,
                ..LedgerRow::default()
            })
        })
        .collect()
}
