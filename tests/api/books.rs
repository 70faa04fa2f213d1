//! The books of the platform key: what `usage_daily` counts against the
//! limits must equal what the ledger holds, with no reservation left open.

use std::time::Duration;

use keyward::server::db::Db;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Books {
    /// Requests and tokens counted against the plan (all days).
    pub requests: i64,
    pub tokens: i64,
    /// Calls in the ledger that reached Anthropic on the platform key, and their tokens.
    pub ledger_requests: i64,
    pub ledger_tokens: i64,
    pub open_reservations: i64,
}

impl Books {
    pub fn balanced(&self) -> bool {
        self.requests == self.ledger_requests
            && self.tokens == self.ledger_tokens
            && self.open_reservations == 0
    }
}

pub async fn books(db: &Db) -> Books {
    let (requests, tokens): (i64, i64) = sqlx::query_as(
        "SELECT CAST(COALESCE(SUM(requests), 0) AS BIGINT), CAST(COALESCE(SUM(tokens), 0) AS BIGINT) \
         FROM usage_daily",
    )
    .fetch_one(db)
    .await
    .unwrap();
    let (ledger_requests, ledger_tokens): (i64, i64) = sqlx::query_as(
        "SELECT COUNT(*), CAST(COALESCE(SUM(input_tokens + output_tokens + cache_creation_tokens + cache_read_tokens), 0) AS BIGINT) \
         FROM usage_ledger WHERE key_source = 'platform' AND reached_upstream = 1",
    )
    .fetch_one(db)
    .await
    .unwrap();
    let open_reservations = sqlx::query_scalar("SELECT COUNT(*) FROM reservations")
        .fetch_one(db)
        .await
        .unwrap();
    Books {
        requests,
        tokens,
        ledger_requests,
        ledger_tokens,
        open_reservations,
    }
}

/// Waits until every call in flight has settled and the books balance
/// (settlement is asynchronous after a hang-up); fails with the books if
/// they never do.
pub async fn balanced_books(db: &Db) -> Books {
    let mut last = books(db).await;
    for _ in 0..300 {
        if last.balanced() {
            return last;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        last = books(db).await;
    }
    panic!("the books never balanced: {last:?}");
}
