//! Reservations that outlive their process: every hold a call takes
//! against a limit (the plan's on the platform key, the user's caps on
//! their own key) has a row here until it is settled or released.
//!
//! The row names the instance that took it and when it expires. A process
//! killed mid-call leaves rows behind; the next start under the same
//! instance name releases them at once, and any instance releases rows
//! whose expiry has passed. A live instance pushes its rows' expiry
//! forward while its calls run, so a long stream is never released under
//! it. Settling and releasing both start by taking their share out of the
//! row (`consume_many`, or `take_many` for a row of one call): whichever
//! comes first (the call's end or a sweep) does the work, exactly once.
//!
//! A platform row may stand for several calls (a lease, see
//! `accounting::leases`): `requests` and `tokens` are what it still
//! counts in `usage_daily`, calls not yet admitted and calls in flight.

use std::collections::{BTreeMap, HashSet};

use super::Db;

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
    pub(super) fn as_str(self) -> &'static str {
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
    /// Calls it counts: one, or a lease's.
    pub requests: i64,
    pub tokens: i64,
    pub cost_micro_usd: i64,
    pub rate_bucket: Option<i64>,
    /// A lease's end: until then its instance admits calls against it.
    pub open_until: Option<i64>,
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
    const COLUMNS: usize = 11;
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
            "INSERT INTO reservations (id, kind, user_id, day, requests, tokens, cost_micro_usd, \
             rate_bucket, open_until, instance, expires_at) VALUES {}",
            values.join(", ")
        );
        let mut query = sqlx::query(&sql);
        for (id, row) in ids.iter().zip(rows) {
            query = query
                .bind(*id)
                .bind(row.kind.as_str())
                .bind(row.user_id)
                .bind(row.day)
                .bind(row.requests)
                .bind(row.tokens)
                .bind(row.cost_micro_usd)
                .bind(row.rate_bucket)
                .bind(row.open_until)
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

/// A share of a platform row to take out: settled or released calls, or
/// what a lease did not use when it closes. A close applies once: a second
/// one (a retried transaction that had in fact committed) finds the lease
/// closed already and takes nothing.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Share {
    pub requests: i64,
    pub tokens: i64,
    /// The lease admits no more calls (its `open_until` is cleared).
    pub closes: bool,
}

/// A platform row that ran empty of requests and was removed, with the
/// tokens it still held (to give back).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Emptied {
    pub user_id: i64,
    pub day: String,
    pub tokens: i64,
}

/// Takes each share out of its row, rows in ascending id order (two
/// writers cannot deadlock). Returns the rows that were still there (the
/// caller owns the shares' settlement; a missing row was released by a
/// sweep) and removes those left with no request, returning them too.
pub async fn consume_many(
    conn: &mut sqlx::AnyConnection,
    shares: &BTreeMap<i64, Share>,
) -> Result<(HashSet<i64>, Vec<Emptied>), sqlx::Error> {
    let mut taken = HashSet::with_capacity(shares.len());
    let ids: Vec<i64> = shares.keys().copied().collect();
    for chunk in ids.chunks(100) {
        let rows: Vec<String> = (0..chunk.len())
            .map(|i| {
                let n = 4 * i;
                format!(
                    "SELECT CAST(${} AS BIGINT) AS v_id, CAST(${} AS BIGINT) AS v_requests, \
                     CAST(${} AS BIGINT) AS v_tokens, CAST(${} AS BIGINT) AS v_closes",
                    n + 1,
                    n + 2,
                    n + 3,
                    n + 4
                )
            })
            .collect();
        let sql = format!(
            "UPDATE reservations SET requests = requests - v.v_requests, \
             tokens = tokens - v.v_tokens, \
             open_until = CASE WHEN v.v_closes = 1 THEN NULL ELSE open_until END \
             FROM ({}) AS v WHERE reservations.id = v.v_id \
             AND (v.v_closes = 0 OR reservations.open_until IS NOT NULL) RETURNING id",
            rows.join(" UNION ALL ")
        );
        let mut query = sqlx::query_scalar::<_, i64>(&sql);
        for id in chunk {
            let share = shares[id];
            query = query
                .bind(*id)
                .bind(share.requests)
                .bind(share.tokens)
                .bind(i64::from(share.closes));
        }
        taken.extend(query.fetch_all(&mut *conn).await?);
    }
    let mut emptied = Vec::new();
    let taken_ids: Vec<i64> = taken.iter().copied().collect();
    for chunk in taken_ids.chunks(500) {
        let list = super::integer_list(chunk);
        let rows: Vec<(i64, String, i64)> = sqlx::query_as(&format!(
            "DELETE FROM reservations WHERE id IN ({list}) AND requests <= 0 \
             RETURNING user_id, day, tokens"
        ))
        .fetch_all(&mut *conn)
        .await?;
        emptied.extend(rows.into_iter().map(|(user_id, day, tokens)| Emptied {
            user_id,
            day,
            tokens,
        }));
    }
    Ok((taken, emptied))
}

/// The latest end of another instance's open lease on `user_id`'s
/// allowance, if one is open at `now_ms` (or ended so recently that its
/// instance is still returning what it did not use).
pub async fn others_open_until(
    conn: &mut sqlx::AnyConnection,
    user_id: i64,
    instance: &str,
    now_ms: i64,
    grace_ms: i64,
) -> Result<Option<i64>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT MAX(open_until) FROM reservations WHERE user_id = $1 \
         AND open_until IS NOT NULL AND instance <> $2 AND open_until > $3",
    )
    .bind(user_id)
    .bind(instance)
    .bind(now_ms - grace_ms)
    .fetch_one(conn)
    .await
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

/// Notes, in the transaction that gives them back, that the releases
/// (holds of calls that never left keyward; id and time) were applied.
pub async fn note_released(
    conn: &mut sqlx::AnyConnection,
    releases: &[(i64, i64)],
) -> Result<(), sqlx::Error> {
    for chunk in releases.chunks(200) {
        let values: Vec<String> = (0..chunk.len())
            .map(|i| format!("(${}, ${})", 2 * i + 1, 2 * i + 2))
            .collect();
        let sql = format!(
            "INSERT INTO released_holds (id, at) VALUES {}",
            values.join(", ")
        );
        let mut query = sqlx::query(&sql);
        for (id, at) in chunk {
            query = query.bind(*id).bind(*at);
        }
        query.execute(&mut *conn).await?;
    }
    Ok(())
}

/// The releases among `ids` that a committed transaction applied already
/// (a settlement retried after its answer was lost).
pub async fn already_released(
    conn: &mut sqlx::AnyConnection,
    ids: &[i64],
) -> Result<HashSet<i64>, sqlx::Error> {
    let mut released = HashSet::new();
    for chunk in ids.chunks(500) {
        let list = super::integer_list(chunk);
        let found: Vec<i64> = sqlx::query_scalar(&format!(
            "SELECT id FROM released_holds WHERE id IN ({list})"
        ))
        .fetch_all(&mut *conn)
        .await?;
        released.extend(found);
    }
    Ok(released)
}

/// Forgets releases noted before `before_ms`: a retry comes within
/// seconds of its first try.
pub async fn forget_releases_before(db: &Db, before_ms: i64) -> Result<u64, sqlx::Error> {
    sqlx::query("DELETE FROM released_holds WHERE at < $1")
        .bind(before_ms)
        .execute(db)
        .await
        .map(|done| done.rows_affected())
}
