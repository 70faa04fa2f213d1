//! The order every writer of a user's books takes its locks in.

use std::collections::BTreeSet;

/// On Postgres, locks `users` in ascending order before anything is read:
/// every instance's admission of a user then waits for the one before it,
/// whatever the day (the per-minute window spans midnight), and two
/// batches take their locks in the same order, so they cannot deadlock.
/// (SQLite locks the whole database.)
pub async fn lock_users_in_order(
    conn: &mut sqlx::AnyConnection,
    users: impl Iterator<Item = i64>,
) -> Result<(), sqlx::Error> {
    let users: Vec<i64> = users.collect::<BTreeSet<i64>>().into_iter().collect();
    for chunk in users.chunks(500) {
        let list = super::integer_list(chunk);
        sqlx::query(&format!(
            "SELECT id FROM users WHERE id IN ({list}) ORDER BY id FOR NO KEY UPDATE"
        ))
        .fetch_all(&mut *conn)
        .await?;
    }
    Ok(())
}
