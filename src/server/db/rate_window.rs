//! The rolling per-minute window as calls per user and 100 ms bucket.
//!
//! Checking a user's window reads at most 601 rows, however many calls it
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

/// A user's calls per bucket, as read at the start of a batch and grown by
/// the calls the batch admits.
#[derive(Debug, Default)]
pub struct Window(BTreeMap<i64, i64>);

impl Window {
    /// The buckets that can still count for a call at or after `now_ms`.
    pub async fn read(
        conn: &mut sqlx::AnyConnection,
        user_id: i64,
        now_ms: i64,
    ) -> Result<Self, sqlx::Error> {
        let rows: Vec<(i64, i64)> = sqlx::query_as(
            "SELECT bucket, calls FROM rate_buckets WHERE user_id = $1 AND bucket >= $2 AND calls > 0",
        )
        .bind(user_id)
        .bind(first_counted(now_ms))
        .fetch_all(conn)
        .await?;
        Ok(Self(rows.into_iter().collect()))
    }

    /// Calls in the window of a call at `now_ms`, and when the oldest of
    /// them may have been made.
    pub fn count_at(&self, now_ms: i64) -> (i64, Option<i64>) {
        let counted = self.0.range(first_counted(now_ms)..);
        let oldest = counted
            .clone()
            .find(|(_, calls)| **calls > 0)
            .map(|(b, _)| *b);
        (counted.map(|(_, calls)| calls).sum(), oldest)
    }

    pub fn add(&mut self, at_ms: i64) {
        *self.0.entry(bucket_of(at_ms)).or_default() += 1;
    }
}

/// The earliest bucket that may hold a call inside the window of a call at
/// `now_ms` (one made after `now_ms - WINDOW_MS`): the first bucket whose
/// last millisecond is in the window.
fn first_counted(now_ms: i64) -> i64 {
    bucket_of(now_ms - WINDOW_MS + 1)
}

/// Adds `calls` to a user's bucket.
pub async fn add(
    conn: &mut sqlx::AnyConnection,
    user_id: i64,
    bucket: i64,
    calls: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO rate_buckets (user_id, bucket, calls) VALUES ($1, $2, $3) \
         ON CONFLICT (user_id, bucket) DO UPDATE SET calls = rate_buckets.calls + excluded.calls",
    )
    .bind(user_id)
    .bind(bucket)
    .bind(calls)
    .execute(conn)
    .await?;
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
