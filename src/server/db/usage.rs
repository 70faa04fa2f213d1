//! Atomic reservations against a user's platform-key limits.
//!
//! A reservation runs in one transaction that first updates the user's row
//! for the UTC day with a conditional `UPDATE … WHERE requests + 1 <= limit`.
//! That row lock (Postgres) or write lock (SQLite) serialises every
//! reservation of the user, across connections and keyward instances, so
//! the per-minute count read next cannot race either. Limits therefore hold
//! under any concurrency.
//!
//! Each reservation also has a row in `reservations` (see that module), so
//! one left by a crashed process is found and released.

use super::{
    reservations::{self, Kind, Tag},
    Db,
};

/// What a successful reservation holds until it is settled or released.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reservation {
    /// Its row in `reservations`.
    pub id: i64,
    pub user_id: i64,
    pub day: String,
    pub tokens: i64,
    pub rate_event_id: i64,
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

#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub requests_per_minute: Option<i64>,
    pub requests_per_day: Option<i64>,
    pub tokens_per_day: Option<i64>,
}

/// Reserves one request and `tokens` for `user_id` at `now_ms`, or says
/// which limit it would overshoot (and changes nothing).
pub async fn reserve(
    db: &Db,
    user_id: i64,
    day: &str,
    now_ms: i64,
    tokens: i64,
    limits: Limits,
    tag: Tag<'_>,
) -> Result<Result<Reservation, Refusal>, sqlx::Error> {
    let mut tx = db.begin().await?;
    sqlx::query("INSERT INTO usage_daily (user_id, day, requests, tokens) VALUES ($1, $2, 0, 0) ON CONFLICT (user_id, day) DO NOTHING")
        .bind(user_id)
        .bind(day)
        .execute(&mut *tx)
        .await?;
    let max_requests = limits.requests_per_day.unwrap_or(-1);
    let max_tokens = limits.tokens_per_day.unwrap_or(-1);
    let updated = sqlx::query(
        "UPDATE usage_daily SET requests = requests + 1, tokens = tokens + $3 \
         WHERE user_id = $1 AND day = $2 AND ($4 < 0 OR requests + 1 <= $4) AND ($5 < 0 OR tokens + $3 <= $5)",
    )
    .bind(user_id)
    .bind(day)
    .bind(tokens)
    .bind(max_requests)
    .bind(max_tokens)
    .execute(&mut *tx)
    .await?;
    if updated.rows_affected() == 0 {
        let (requests, _used): (i64, i64) = sqlx::query_as(
            "SELECT requests, tokens FROM usage_daily WHERE user_id = $1 AND day = $2",
        )
        .bind(user_id)
        .bind(day)
        .fetch_one(&mut *tx)
        .await?;
        tx.rollback().await?;
        let refusal = match limits.requests_per_day {
            Some(limit) if requests + 1 > limit => Refusal::RequestsPerDay { limit },
            _ => Refusal::TokensPerDay { limit: max_tokens },
        };
        return Ok(Err(refusal));
    }
    if let Some(limit) = limits.requests_per_minute {
        let (recent, oldest): (i64, Option<i64>) = sqlx::query_as(
            "SELECT COUNT(*), MIN(at) FROM rate_events WHERE user_id = $1 AND at > $2",
        )
        .bind(user_id)
        .bind(now_ms - 60_000)
        .fetch_one(&mut *tx)
        .await?;
        if recent >= limit {
            tx.rollback().await?;
            return Ok(Err(Refusal::RequestsPerMinute {
                limit,
                oldest_at: oldest.unwrap_or(now_ms),
            }));
        }
    }
    let rate_event_id: i64 =
        sqlx::query_scalar("INSERT INTO rate_events (user_id, at) VALUES ($1, $2) RETURNING id")
            .bind(user_id)
            .bind(now_ms)
            .fetch_one(&mut *tx)
            .await?;
    let row = reservations::Row {
        kind: Kind::Platform,
        user_id,
        day,
        tokens,
        cost_micro_usd: 0,
        rate_event_id: Some(rate_event_id),
    };
    let id = reservations::insert(&mut tx, row, tag).await?;
    tx.commit().await?;
    Ok(Ok(Reservation {
        id,
        user_id,
        day: day.to_owned(),
        tokens,
        rate_event_id,
    }))
}

/// Settles a call that reached Anthropic: it stays one request, and its
/// reserved tokens become the `used_tokens` it was billed for. If a sweep
/// released the reservation meanwhile (the call outlived its expiry), the
/// call is counted afresh. Runs on the caller's connection, usually inside
/// the ledger writer's transaction.
pub async fn settle(
    conn: &mut sqlx::AnyConnection,
    reservation: &Reservation,
    used_tokens: i64,
) -> Result<(), sqlx::Error> {
    if reservations::take(conn, reservation.id).await? {
        sqlx::query(
            "UPDATE usage_daily SET tokens = tokens - $3 + $4 WHERE user_id = $1 AND day = $2",
        )
        .bind(reservation.user_id)
        .bind(&reservation.day)
        .bind(reservation.tokens)
        .bind(used_tokens)
        .execute(&mut *conn)
        .await?;
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO usage_daily (user_id, day, requests, tokens) VALUES ($1, $2, 1, $3) \
         ON CONFLICT (user_id, day) DO UPDATE SET requests = usage_daily.requests + 1, \
         tokens = usage_daily.tokens + excluded.tokens",
    )
    .bind(reservation.user_id)
    .bind(&reservation.day)
    .bind(used_tokens)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Gives the whole reservation back: its call never left keyward. Does
/// nothing if a sweep already released it.
pub async fn release(
    conn: &mut sqlx::AnyConnection,
    reservation: &Reservation,
) -> Result<(), sqlx::Error> {
    if reservations::take(conn, reservation.id).await? {
        give_back(
            conn,
            reservation.user_id,
            &reservation.day,
            reservation.tokens,
            Some(reservation.rate_event_id),
        )
        .await?;
    }
    Ok(())
}

/// Undoes what a reservation added: the request, its tokens and its place
/// in the per-minute window.
pub(super) async fn give_back(
    conn: &mut sqlx::AnyConnection,
    user_id: i64,
    day: &str,
    tokens: i64,
    rate_event_id: Option<i64>,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE usage_daily SET requests = requests - 1, tokens = tokens - $3 WHERE user_id = $1 AND day = $2")
        .bind(user_id)
        .bind(day)
        .bind(tokens)
        .execute(&mut *conn)
        .await?;
    if let Some(id) = rate_event_id {
        sqlx::query("DELETE FROM rate_events WHERE id = $1")
            .bind(id)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
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

pub async fn prune_rate_events(db: &Db, before_ms: i64) -> Result<u64, sqlx::Error> {
    let done = sqlx::query("DELETE FROM rate_events WHERE at <= $1")
        .bind(before_ms)
        .execute(db)
        .await?;
    Ok(done.rows_affected())
}
