//! The rolling per-minute window as calls per user and 100 ms bucket.
//!
//! Checking a user's window sums at most 601 rows, however many calls it
//! holds; the per-call events this replaces cost more the busier a user
//! was. A bucket counts while any part of it lies inside the window, so a
//! call may be refused up to 100 ms longer than an exact log of calls
//! would refuse it, and is never admitted sooner.

use std::collections::BTreeMap;

use super::Db;

pub const BUCKET_MS: i64 = 100;
pub const WINDOW_MS: i64 = 60_000;

/// The bucket a call made at `at_ms` is counted in.
pub fn bucket_of(at_ms: i64) -> i64 {
    at_ms - at_ms.rem_euclid(BUCKET_MS)
}

/// A user's window as a batch sees it: the calls counted when the batch
/// read it, and the calls the batch admits since.
#[derive(Debug, Default)]
pub struct Window {
    /// Calls in the window at the batch's earliest ask, and the oldest
    /// bucket holding one. Later asks of the batch count these too, though
    /// a few may have left their window meanwhile: a batch spans a few
    /// milliseconds, and erring that way only refuses, never admits.
    read: i64,
    oldest_read: Option<i64>,
    added: BTreeMap<i64, i64>,
}

impl Window {
    /// The windows of `users` for a call at `now_ms`, in one statement.
    pub async fn read_many(
        conn: &mut sqlx::AnyConnection,
        users: &[i64],
        now_ms: i64,
    ) -> Result<Vec<(i64, Self)>, sqlx::Error> {
        if users.is_empty() {
            return Ok(Vec::new());
        }
        let list = super::integer_list(users);
        let rows: Vec<(i64, i64, Option<i64>)> = sqlx::query_as(&format!(
            "SELECT user_id, CAST(COALESCE(SUM(calls), 0) AS BIGINT), MIN(bucket) FROM rate_buckets \
             WHERE user_id IN ({list}) AND bucket >= $1 AND calls > 0 GROUP BY user_id"
        ))
        .bind(first_counted(now_ms))
        .fetch_all(conn)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(user_id, read, oldest_read)| {
                let window = Self {
                    read,
                    oldest_read,
                    added: BTreeMap::new(),
                };
                (user_id, window)
            })
            .collect())
    }

    /// Calls in the window of a call at `now_ms`, and when the oldest of
    /// them may have been made.
    pub fn count_at(&self, now_ms: i64) -> (i64, Option<i64>) {
        let added = self.added.range(first_counted(now_ms)..);
        let oldest_added = added.clone().next().map(|(bucket, _)| *bucket);
        let count = self.read + added.map(|(_, calls)| calls).sum::<i64>();
        let oldest = match (self.oldest_read, oldest_added) {
            (Some(read), Some(added)) => Some(read.min(added)),
            (read, added) => read.or(added),
        };
        (count, oldest)
    }

    pub fn add(&mut self, at_ms: i64) {
        self.add_calls(at_ms, 1);
    }

    /// `calls` calls counted at `at_ms` (a lease's calls not yet made).
    pub fn add_calls(&mut self, at_ms: i64, calls: i64) {
        *self.added.entry(bucket_of(at_ms)).or_default() += calls;
    }
}

/// The earliest bucket that may hold a call inside the window of a call at
/// `now_ms` (one made after `now_ms - WINDOW_MS`): the first bucket whose
/// last millisecond is in the window.
fn first_counted(now_ms: i64) -> i64 {
    bucket_of(now_ms - WINDOW_MS + 1)
}

/// Adds calls to users' buckets: `(user_id, bucket, calls)`, a statement
/// for many.
pub async fn add_many(
    conn: &mut sqlx::AnyConnection,
    counts: &[(i64, i64, i64)],
) -> Result<(), sqlx::Error> {
    for chunk in counts.chunks(100) {
        let values: Vec<String> = (0..chunk.len())
            .map(|i| format!("(${}, ${}, ${})", 3 * i + 1, 3 * i + 2, 3 * i + 3))
            .collect();
        let sql = format!(
            "INSERT INTO rate_buckets (user_id, bucket, calls) VALUES {} \
             ON CONFLICT (user_id, bucket) DO UPDATE SET calls = rate_buckets.calls + excluded.calls",
            values.join(", ")
        );
        let mut query = sqlx::query(&sql);
        for (user_id, bucket, calls) in chunk {
            query = query.bind(*user_id).bind(*bucket).bind(*calls);
        }
        query.execute(&mut *conn).await?;
    }
    Ok(())
}

/// Takes calls back out of users' buckets, `(user_id, bucket, calls)`, a
/// statement for many; a bucket pruned meanwhile is left alone.
pub async fn remove_many(
    conn: &mut sqlx::AnyConnection,
    counts: &[(i64, i64, i64)],
) -> Result<(), sqlx::Error> {
    for chunk in counts.chunks(100) {
        let rows: Vec<String> = (0..chunk.len())
            .map(|i| {
                format!(
                    "SELECT CAST(${} AS BIGINT) AS v_user, CAST(${} AS BIGINT) AS v_bucket, \
                     CAST(${} AS BIGINT) AS v_calls",
                    3 * i + 1,
                    3 * i + 2,
                    3 * i + 3
                )
            })
            .collect();
        let sql = format!(
            "UPDATE rate_buckets SET calls = calls - v.v_calls FROM ({}) AS v \
             WHERE rate_buckets.user_id = v.v_user AND rate_buckets.bucket = v.v_bucket",
            rows.join(" UNION ALL ")
        );
        let mut query = sqlx::query(&sql);
        for (user_id, bucket, calls) in chunk {
            query = query.bind(*user_id).bind(*bucket).bind(*calls);
        }
        query.execute(&mut *conn).await?;
    }
    Ok(())
}

/// Buckets no window can reach any more.
pub async fn prune(db: &Db, now_ms: i64) -> Result<u64, sqlx::Error> {
    let done = sqlx::query("DELETE FROM rate_buckets WHERE bucket < $1")
        .bind(now_ms - 2 * WINDOW_MS)
        .execute(db)
        .await?;
    Ok(done.rows_affected())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_call_leaves_the_window_within_a_bucket_of_sixty_seconds() {
        for t in [1_000_000, 1_000_050, 1_000_099] {
            let mut window = Window::default();
            window.add(t);
            assert_eq!(
                window.count_at(t + 59_900).0,
                1,
                "{t}: still inside at 59.9 s"
            );
            assert_eq!(
                window.count_at(t + 60_000 - 1).0,
                1,
                "{t}: inside until 60 s"
            );
            assert_eq!(window.count_at(t + 60_100).0, 0, "{t}: gone at 60.1 s");
        }
        let mut exact = Window::default();
        exact.add(1_000_099);
        assert_eq!(
            exact.count_at(1_060_099).0,
            0,
            "the bucket's last millisecond left exactly at 60 s"
        );
    }

    #[test]
    fn the_oldest_counted_bucket_tells_when_room_comes_back() {
        let mut window = Window::default();
        window.add(5_000);
        window.add(5_150);
        window.add(5_160);
        assert_eq!(window.count_at(6_000), (3, Some(5_000)));
        assert_eq!(
            window.count_at(65_050),
            (3, Some(5_000)),
            "5,000–5,099 may hold a call after 5,050"
        );
        assert_eq!(window.count_at(65_100), (2, Some(5_100)));
    }
}
