//! Reservations that outlive their process: every hold a call takes
//! against a limit (the plan's on the platform key, the user's caps on
//! their own key) has a row here until it is settled or released.
//!
//! The row names the instance that took it and when it expires. A process
//! killed mid-call leaves rows behind; the next start under the same
//! instance name releases them at once, and any instance releases rows
//! whose expiry has passed. A live instance pushes its rows' expiry
//! forward while its calls run, so a long stream is never released under
//! it. Settling and releasing both start by deleting the row: whichever
//! comes first (the call's end or a sweep) does the work, exactly once.

use std::collections::HashSet;

use super::{usage, Db};

/// Who took a reservation, and until when it stands without renewal.
#[derive(Debug, Clone, Copy)]
pub struct Tag<'a> {
    pub instance: &'a str,
    pub expires_at: i64,
}

/// The two kinds of hold, as the `kind` column names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Platform,
    OwnKey,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Platform => "platform",
            Kind::OwnKey => "own_key",
        }
    }
}

/// What one reservation row holds.
pub struct Row<'a> {
    pub kind: Kind,
    pub user_id: i64,
    pub day: &'a str,
    pub tokens: i64,
    pub cost_micro_usd: i64,
    pub rate_bucket: Option<i64>,
}

/// A new reservation's id: random, so whoever takes a reservation names it
/// without a round trip (63 bits: two ever meeting is not a concern).
pub fn new_id() -> i64 {
    (rand::random::<u64>() >> 1) as i64
}

/// Records a hold, inside the transaction that takes it; returns its id.
pub async fn insert(
    conn: &mut sqlx::AnyConnection,
    row: Row<'_>,
    tag: Tag<'_>,
) -> Result<i64, sqlx::Error> {
    let id = new_id();
    insert_many(conn, &[id], &[row], tag).await?;
    Ok(id)
}

/// Records holds named `ids`, a few statements for any number.
pub async fn insert_many(
    conn: &mut sqlx::AnyConnection,
    ids: &[i64],
    rows: &[Row<'_>],
    tag: Tag<'_>,
) -> Result<(), sqlx::Error> {
    const COLUMNS: usize = 9;
    const PER_STATEMENT: usize = 64;
    for (ids, rows) in ids.chunks(PER_STATEMENT).zip(rows.chunks(PER_STATEMENT)) {
        let values: Vec<String> = (0..rows.len())
            .map(|row| {
                let params: Vec<String> = (1..=COLUMNS)
                    .map(|n| format!("${}", row * COLUMNS + n))
                    .collect();
                format!("({})", params.join(", "))
            })
            .collect();
        let sql = format!(
            "INSERT INTO reservations (id, kind, user_id, day, tokens, cost_micro_usd, rate_bucket, \
             instance, expires_at) VALUES {}",
            values.join(", ")
        );
        let mut query = sqlx::query(&sql);
        for (id, row) in ids.iter().zip(rows) {
            query = query
                .bind(*id)
                .bind(row.kind.as_str())
                .bind(row.user_id)
                .bind(row.day)
                .bind(row.tokens)
                .bind(row.cost_micro_usd)
                .bind(row.rate_bucket)
                .bind(tag.instance)
                .bind(tag.expires_at);
        }
        query.execute(&mut *conn).await?;
    }
    Ok(())
}

/// Removes the rows named `ids`; the ids this caller removed (and so owns
/// the settlement of). A few statements for a whole batch.
pub async fn take_many(
    conn: &mut sqlx::AnyConnection,
    ids: &[i64],
) -> Result<HashSet<i64>, sqlx::Error> {
    let mut taken = HashSet::with_capacity(ids.len());
    for chunk in ids.chunks(500) {
        let list = super::integer_list(chunk);
        let removed: Vec<i64> = sqlx::query_scalar(&format!(
            "DELETE FROM reservations WHERE id IN ({list}) RETURNING id"
        ))
        .fetch_all(&mut *conn)
        .await?;
        taken.extend(removed);
    }
    Ok(taken)
}

/// Keeps the reservations of calls still running standing.
pub async fn renew(db: &Db, ids: &[i64], expires_at: i64) -> Result<u64, sqlx::Error> {
    let mut renewed = 0;
    for chunk in ids.chunks(500) {
        let list = super::integer_list(chunk);
        let done = sqlx::query(&format!(
            "UPDATE reservations SET expires_at = $1 WHERE id IN ({list})"
        ))
        .bind(expires_at)
        .execute(db)
        .await?;
        renewed += done.rows_affected();
    }
    Ok(renewed)
}

/// Releases every reservation that expired before `now_ms`, and, when
/// `dead_instance` is given, every one that instance left (a restart under
/// the same name: its calls died with the old process). Returns how many.
pub async fn release_abandoned(
    db: &Db,
    now_ms: i64,
    dead_instance: Option<&str>,
) -> Result<u64, sqlx::Error> {
    type Abandoned = (i64, String, i64, String, i64, i64, Option<i64>);
    let rows: Vec<Abandoned> = sqlx::query_as(
        "SELECT id, kind, user_id, day, tokens, cost_micro_usd, rate_bucket FROM reservations \
         WHERE expires_at < $1 OR instance = $2",
    )
    .bind(now_ms)
    .bind(dead_instance.unwrap_or(""))
    .fetch_all(db)
    .await?;
    let mut released = 0;
    for (id, kind, user_id, day, tokens, cost, rate_bucket) in rows {
        let mut tx = db.begin().await?;
        if take_many(&mut tx, &[id]).await?.is_empty() {
            continue;
        }
        if kind == Kind::OwnKey.as_str() {
            let mut changes = super::own_key_usage::UseChanges::default();
            changes.add(user_id, &day, -tokens, -cost);
            changes.apply(&mut tx).await?;
        } else {
            let mut changes = usage::UsageChanges::default();
            changes.give_back(user_id, &day, tokens, rate_bucket);
            changes.apply(&mut tx).await?;
        }
        tx.commit().await?;
        released += 1;
    }
    Ok(released)
}
