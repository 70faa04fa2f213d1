//! A user's platform-key use per UTC day, and the reservations against it:
//! taken in batches (`reserve_many`), settled to what the call used, or
//! given back when it never left keyward.
//!
//! Each reservation also has a row in `reservations` (see that module), so
//! one left by a crashed process is found and released.

use super::{
    rate_window,
    reservations::{self, Tag},
    reserve_many::{reserve_many, Ask},
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

#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub requests_per_minute: Option<i64>,
    pub requests_per_day: Option<i64>,
    pub tokens_per_day: Option<i64>,
}

/// Reserves one request and `tokens` for `user_id` at `now_ms` in a
/// transaction of its own, or says which limit it would overshoot (and
/// changes nothing). Calls are admitted in batches by the ledger writer
/// (`reserve_many`); this is the same decision for a batch of one.
pub async fn reserve(
    db: &Db,
    user_id: i64,
    day: &str,
    now_ms: i64,
    tokens: i64,
    limits: Limits,
    tag: Tag<'_>,
) -> Result<Result<Reservation, Refusal>, sqlx::Error> {
    let ask = Ask {
        user_id,
        day: day.to_owned(),
        now_ms,
        tokens,
        limits,
    };
    let mut conn = db.acquire().await?;
    let mut answers = reserve_many(&mut conn, &[ask], tag).await?;
    Ok(answers.remove(0))
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
            Some(reservation.rate_bucket),
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
    rate_bucket: Option<i64>,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE usage_daily SET requests = requests - 1, tokens = tokens - $3 WHERE user_id = $1 AND day = $2")
        .bind(user_id)
        .bind(day)
        .bind(tokens)
        .execute(&mut *conn)
        .await?;
    if let Some(bucket) = rate_bucket {
        rate_window::add(conn, user_id, bucket, -1).await?;
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
