//! The usage ledger: exactly one row per upstream call.

use super::Db;
use crate::model::domain::PaidBy;

/// One upstream call as the ledger keeps it. It has no default: every row
/// names who paid (`LedgerRow::new`).
#[derive(Debug, Clone)]
pub struct LedgerRow {
    pub at: i64,
    pub user_id: i64,
    pub conversation_id: Option<i64>,
    pub message_id: Option<i64>,
    pub token_id: Option<i64>,
    pub paid_by: PaidBy,
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
    /// `false` for a call that never left keyward (it counts against no limit).
    pub reached_upstream: bool,
    /// Server-tool uses billed per use (web searches).
    pub server_tool_uses: i64,
    /// The client's session (Claude Code's `x-claude-code-session-id`).
    pub client_session: Option<String>,
    /// The agent within it (Claude Code's `x-claude-code-agent-id`).
    pub client_agent: Option<String>,
    /// Chosen when the call ended; a retried batch skips rows already in.
    pub call_id: Option<i64>,
    /// What prompt caching saved on the call (negative: it only wrote).
    pub saved_micro_usd: i64,
}

impl LedgerRow {
    /// A row for `user_id`'s call of `model` paid by `paid_by`, made at
    /// `at`, that ended with `status`; usage and the rest still zero.
    pub fn new(at: i64, user_id: i64, paid_by: PaidBy, model: String, status: String) -> Self {
        Self {
            at,
            user_id,
            conversation_id: None,
            message_id: None,
            token_id: None,
            paid_by,
            model,
            input_tokens: 0,
            output_tokens: 0,
            cache_creation_tokens: 0,
            cache_read_tokens: 0,
            cost_micro_usd: 0,
            status,
            error_type: None,
            latency_ms: 0,
            ttft_ms: None,
            request_id: None,
            reached_upstream: true,
            server_tool_uses: 0,
            client_session: None,
            client_agent: None,
            call_id: None,
            saved_micro_usd: 0,
        }
    }

    /// Every token the call was billed for.
    pub fn total_tokens(&self) -> i64 {
        self.input_tokens + self.output_tokens + self.cache_creation_tokens + self.cache_read_tokens
    }

    /// The row as a user's (or an admin's) list of recent calls shows it.
    pub fn into_summary(self) -> crate::model::CallSummary {
        crate::model::CallSummary {
            at: super::format_time(self.at),
            model: self.model,
            paid_by: self.paid_by,
            input_tokens: self.input_tokens,
            output_tokens: self.output_tokens,
            cost_micro_usd: self.cost_micro_usd,
            status: self.status,
        }
    }
}

const COLUMNS: usize = 23;

/// Rows per INSERT statement: a batch is cut into these sizes, so a handful
/// of statements serve every batch and stay prepared in the connection's
/// statement cache instead of being parsed again for each new row count.
const INSERT_SIZES: [usize; 4] = [64, 16, 4, 1];

/// The INSERT for `rows` rows. SQLite gets anonymous `?` placeholders:
/// SQLite looks a named one (`$17`) up by walking a list, and binding
/// walks it once per parameter — quadratic in the statement's size, which
/// made the ledger writer the gateway's bottleneck.
fn insert_sql(sqlite: bool, rows: usize) -> &'static str {
    static SQL: std::sync::OnceLock<Vec<(bool, usize, String)>> = std::sync::OnceLock::new();
    let all = SQL.get_or_init(|| {
        [true, false]
            .into_iter()
            .flat_map(|sqlite| {
                INSERT_SIZES.map(|rows| (sqlite, rows, build_insert_sql(sqlite, rows)))
            })
            .collect()
    });
    all.iter()
        .find(|(s, r, _)| *s == sqlite && *r == rows)
        .map(|(_, _, sql)| sql.as_str())
        .expect("INSERT_SIZES covers every chunk")
}

fn build_insert_sql(sqlite: bool, rows: usize) -> String {
    let values = (0..rows)
        .map(|row| {
            let params: Vec<String> = (1..=COLUMNS)
                .map(|n| {
                    if sqlite {
                        "?".to_owned()
                    } else {
                        format!("${}", row * COLUMNS + n)
                    }
                })
                .collect();
            format!("({})", params.join(", "))
        })
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "INSERT INTO usage_ledger (at, user_id, conversation_id, message_id, token_id, key_source, model, \
         input_tokens, output_tokens, cache_creation_tokens, cache_read_tokens, cost_micro_usd, status, \
         error_type, latency_ms, ttft_ms, request_id, reached_upstream, server_tool_uses, client_session, client_agent, call_id, saved_micro_usd) \
         VALUES {values}"
    )
}

/// Cuts `total` rows into statement sizes from `INSERT_SIZES`, largest first.
fn chunk_sizes(mut total: usize) -> Vec<usize> {
    let mut sizes = Vec::new();
    for size in INSERT_SIZES {
        while total >= size {
            sizes.push(size);
            total -= size;
        }
    }
    sizes
}

/// Inserts rows with a few multi-row statements.
pub async fn insert_many(
    conn: &mut sqlx::AnyConnection,
    rows: &[&LedgerRow],
) -> Result<(), sqlx::Error> {
    let sqlite = conn.backend_name() == "SQLite";
    let mut rest = rows;
    for size in chunk_sizes(rows.len()) {
        let (chunk, tail) = rest.split_at(size);
        rest = tail;
        let mut query = sqlx::query(insert_sql(sqlite, size));
        for row in chunk {
            query = query
                .bind(row.at)
                .bind(row.user_id)
                .bind(row.conversation_id)
                .bind(row.message_id)
                .bind(row.token_id)
                .bind(row.paid_by.as_str())
                // Borrowed as `&str`: a `&String` would be copied for the query.
                .bind(row.model.as_str())
                .bind(row.input_tokens)
                .bind(row.output_tokens)
                .bind(row.cache_creation_tokens)
                .bind(row.cache_read_tokens)
                .bind(row.cost_micro_usd)
                .bind(row.status.as_str())
                .bind(row.error_type.as_deref())
                .bind(row.latency_ms)
                .bind(row.ttft_ms)
                .bind(row.request_id.as_deref())
                .bind(i64::from(row.reached_upstream))
                .bind(row.server_tool_uses)
                .bind(row.client_session.as_deref())
                .bind(row.client_agent.as_deref())
                .bind(row.call_id)
                .bind(row.saved_micro_usd);
        }
        query.execute(&mut *conn).await?;
    }
    Ok(())
}

/// Which of `call_ids` have a row already (their batch was committed,
/// though the writer did not hear so).
pub async fn already_written(
    conn: &mut sqlx::AnyConnection,
    call_ids: &[i64],
) -> Result<std::collections::HashSet<i64>, sqlx::Error> {
    if call_ids.is_empty() {
        return Ok(Default::default());
    }
    let sql = format!(
        "SELECT call_id FROM usage_ledger WHERE call_id IN ({})",
        super::integer_list(call_ids)
    );
    sqlx::query_scalar(&sql)
        .fetch_all(&mut *conn)
        .await
        .map(|ids| ids.into_iter().collect())
}

/// What prompt caching saved `user_id` from `since_ms` on, in micro-USD.
pub async fn saved_since(db: &super::Db, user_id: i64, since_ms: i64) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT CAST(COALESCE(SUM(saved_micro_usd), 0) AS BIGINT) FROM usage_ledger \
         WHERE user_id = $1 AND at >= $2",
    )
    .bind(user_id)
    .bind(since_ms)
    .fetch_one(db)
    .await
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
            Ok(LedgerRow {
                input_tokens: r.try_get("input_tokens")?,
                output_tokens: r.try_get("output_tokens")?,
                cache_creation_tokens: r.try_get("cache_creation_tokens")?,
                cache_read_tokens: r.try_get("cache_read_tokens")?,
                cost_micro_usd: r.try_get("cost_micro_usd")?,
                error_type: r.try_get("error_type")?,
                latency_ms: r.try_get("latency_ms")?,
                ..LedgerRow::new(
                    r.try_get("at")?,
                    user_id,
                    super::word(r, "key_source")?,
                    r.try_get("model")?,
                    r.try_get("status")?,
                )
            })
        })
        .collect()
}

/// What one client session (say, a Claude Code session) used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionUse {
    pub session: String,
    pub calls: i64,
    /// Distinct agents (Claude Code's main agent and its subagents).
    pub agents: i64,
    pub tokens: i64,
    pub cost_micro_usd: i64,
    pub first_at: i64,
    pub last_at: i64,
}

/// `user_id`'s most recent client sessions of the last 30 days, newest
/// first (bounded, so a page load never reads a user's whole history).
pub async fn sessions_for_user(
    db: &Db,
    user_id: i64,
    limit: i64,
    now_ms: i64,
) -> Result<Vec<SessionUse>, sqlx::Error> {
    const RECENT_MS: i64 = 30 * 24 * 60 * 60 * 1000;
    let rows: Vec<(String, i64, i64, i64, i64, i64, i64)> = sqlx::query_as(
        "SELECT client_session, COUNT(*), COUNT(DISTINCT client_agent), \
         CAST(COALESCE(SUM(input_tokens + output_tokens + cache_creation_tokens + cache_read_tokens), 0) AS BIGINT), \
         CAST(COALESCE(SUM(cost_micro_usd), 0) AS BIGINT), MIN(at), MAX(at) \
         FROM usage_ledger WHERE user_id = $1 AND client_session IS NOT NULL AND at >= $3 \
         GROUP BY client_session ORDER BY MAX(at) DESC, MAX(id) DESC LIMIT $2",
    )
    .bind(user_id)
    .bind(limit)
    .bind(now_ms - RECENT_MS)
    .fetch_all(db)
    .await?;
    Ok(rows
        .into_iter()
        .map(
            |(session, calls, agents, tokens, cost_micro_usd, first_at, last_at)| SessionUse {
                session,
                calls,
                agents,
                tokens,
                cost_micro_usd,
                first_at,
                last_at,
            },
        )
        .collect())
}

impl SessionUse {
    /// As the usage views show it.
    pub fn into_summary(self) -> crate::model::SessionSummary {
        crate::model::SessionSummary {
            session: self.session,
            calls: self.calls,
            agents: self.agents,
            tokens: self.tokens,
            cost_micro_usd: self.cost_micro_usd,
            first: super::format_time(self.first_at),
            last: super::format_time(self.last_at),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_are_cut_into_a_few_cached_statement_sizes() {
        assert_eq!(chunk_sizes(0), Vec::<usize>::new());
        assert_eq!(chunk_sizes(1), vec![1]);
        assert_eq!(chunk_sizes(87), vec![64, 16, 4, 1, 1, 1]);
        assert_eq!(chunk_sizes(256), vec![64; 4]);
        for total in 0..300 {
            assert_eq!(chunk_sizes(total).iter().sum::<usize>(), total);
        }
    }

    #[test]
    fn sqlite_gets_anonymous_placeholders_and_postgres_numbered_ones() {
        let sqlite = insert_sql(true, 4);
        assert_eq!(sqlite.matches('?').count(), 4 * COLUMNS);
        assert!(!sqlite.contains('$'));
        let postgres = insert_sql(false, 4);
        assert!(postgres.ends_with("$90, $91, $92)"), "{postgres}");
        assert!(!postgres.contains('?'));
    }
}
