//! A user's platform-key use per UTC day, and the reservations against it:
//! taken in batches (`reserve_many`), settled to what the call used, or
//! given back when it never left keyward.
//!
//! Each reservation also has a row in `reservations` (see that module), so
//! one left by a crashed process is found and released.

use std::collections::BTreeMap;

use super::{rate_window, Db};

/// What a successful reservation holds until it is settled or released.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reservation {
    /// Its row in `reservations`.
    pub id: i64,
    pub user_id: i64,
    pub day: String,
    pub tokens: i64,
    /// The per-minute bucket the call was counted in.
    pub rate_bucket: i64,
}

/// Which limit refused a reservation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    RequestsPerDay {
        limit: i64,
    },
    TokensPerDay {
        limit: i64,
    },
    /// `oldest_at` is when the oldest call in the window was made.
    RequestsPerMinute {
        limit: i64,
        oldest_at: i64,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub requests_per_minute: Option<i64>,
    pub requests_per_day: Option<i64>,
    pub tokens_per_day: Option<i64>,
}

/// Changes to users' platform-key use, summed per user and day and per
/// per-minute bucket, so a batch of settlements costs a statement per user
/// instead of two per call.
#[derive(Debug, Default)]
pub struct UsageChanges {
    /// (requests, tokens) to add, per (user, day).
    days: BTreeMap<(i64, String), (i64, i64)>,
    /// Calls to take out of a per-minute bucket, per (user, bucket).
    buckets: BTreeMap<(i64, i64), i64>,
}

impl UsageChanges {
    /// A call that reached Anthropic ends having used `used_tokens`: it
    /// stays one request, and its reserved tokens become what it used. If
    /// a sweep released the reservation meanwhile (`taken` is false: the
    /// call outlived its expiry), the call is counted afresh.
    pub fn settle(&mut self, reservation: &Reservation, used_tokens: i64, taken: bool) {
        let day = self
            .days
            .entry((reservation.user_id, reservation.day.clone()))
            .or_default();
        if taken {
            day.1 += used_tokens - reservation.tokens;
        } else {
            day.0 += 1;
            day.1 += used_tokens;
        }
    }

    /// A call that never left keyward gives its whole reservation back,
    /// unless a sweep did already (`taken` is false).
    pub fn release(&mut self, reservation: &Reservation, taken: bool) {
        if taken {
            self.give_back(
                reservation.user_id,
                &reservation.day,
                1,
                reservation.tokens,
                Some(reservation.rate_bucket),
            );
        }
    }

    /// Undoes what reservations added: `requests` requests, their tokens
    /// and their places in the per-minute window.
    pub fn give_back(
        &mut self,
        user_id: i64,
        day: &str,
        requests: i64,
        tokens: i64,
        rate_bucket: Option<i64>,
    ) {
        let change = self.days.entry((user_id, day.to_owned())).or_default();
        change.0 -= requests;
        change.1 -= tokens;
        if let Some(bucket) = rate_bucket.filter(|_| requests != 0) {
            *self.buckets.entry((user_id, bucket)).or_default() += requests;
        }
    }

    /// Tokens a lease held but no call used, given back when its row ran
    /// empty of requests.
    pub fn give_back_tokens(&mut self, user_id: i64, day: &str, tokens: i64) {
        self.give_back(user_id, day, 0, tokens, None);
    }

    /// Writes the sums in two statements whatever the number of users
    /// (rows in ascending user order, the order admission locks them in).
    pub async fn apply(self, conn: &mut sqlx::AnyConnection) -> Result<(), sqlx::Error> {
        let days: Vec<((i64, String), (i64, i64))> = self
            .days
            .into_iter()
            .filter(|(_, (requests, tokens))| *requests != 0 || *tokens != 0)
            .collect();
        for chunk in days.chunks(100) {
            let values: Vec<String> = (0..chunk.len())
                .map(|i| {
                    let n = 4 * i;
                    format!("(${}, ${}, ${}, ${})", n + 1, n + 2, n + 3, n + 4)
                })
                .collect();
            let sql = format!(
                "INSERT INTO usage_daily (user_id, day, requests, tokens) VALUES {} \
                 ON CONFLICT (user_id, day) DO UPDATE SET \
                 requests = usage_daily.requests + excluded.requests, \
                 tokens = usage_daily.tokens + excluded.tokens",
                values.join(", ")
            );
            let mut query = sqlx::query(&sql);
            for ((user_id, day), (requests, tokens)) in chunk {
                query = query
                    .bind(*user_id)
                    .bind(day.as_str())
                    .bind(*requests)
                    .bind(*tokens);
            }
            query.execute(&mut *conn).await?;
        }
        let buckets: Vec<(i64, i64, i64)> = self
            .buckets
            .into_iter()
            .map(|((user_id, bucket), calls)| (user_id, bucket, calls))
            .collect();
        rate_window::remove_many(conn, &buckets).await
    }
}

/// Today's use, for the usage page: (requests, tokens).
pub async fn today(db: &Db, user_id: i64, day: &str) -> Result<(i64, i64), sqlx::Error> {
    let row: Option<(i64, i64)> =
        sqlx::query_as("SELECT requests, tokens FROM usage_daily WHERE user_id = $1 AND day = $2")
            .bind(user_id)
            .bind(day)
            .fetch_optional(db)
            .await?;
    Ok(row.unwrap_or((0, 0)))
}
