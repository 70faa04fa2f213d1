//! Giving reservations back whole: rows an expired or restarted process
//! left (the sweep), and rows no call was told of (a batch whose answer
//! was lost). What a row holds goes back to the user's day and per-minute
//! bucket, or to their own key's daily use.

use super::{reservations::Kind, usage, Db};

/// Releases every reservation that expired before `now_ms`, and, when
/// `dead_instance` is given, every one that instance left (a restart under
/// the same name: its calls died with the old process). Returns how many.
pub async fn release_abandoned(
    db: &Db,
    now_ms: i64,
    dead_instance: Option<&str>,
) -> Result<u64, sqlx::Error> {
    let ids: Vec<i64> =
        sqlx::query_scalar("SELECT id FROM reservations WHERE expires_at < $1 OR instance = $2")
            .bind(now_ms)
            .bind(dead_instance.unwrap_or(""))
            .fetch_all(db)
            .await?;
    let mut released = 0;
    for id in ids {
        let mut tx = db.begin().await?;
        if tx.backend_name() != "SQLite" {
            // The order every writer of a user's books locks in.
            let user: Option<i64> =
                sqlx::query_scalar("SELECT user_id FROM reservations WHERE id = $1")
                    .bind(id)
                    .fetch_optional(&mut *tx)
                    .await?;
            let Some(user) = user else { continue };
            super::book_locks::lock_users_in_order(&mut tx, std::iter::once(user)).await?;
        }
        // What the row holds now: settlements and lease returns shrink it
        // in place, so the values read to find it may be stale.
        if remove_and_give_back(&mut tx, &[id]).await? == 0 {
            continue;
        }
        tx.commit().await?;
        released += 1;
    }
    Ok(released)
}

/// Removes the rows named `ids` whole and gives back what each still
/// holds, inside the caller's transaction (which on Postgres has locked
/// their users). Returns how many were there: a row never written, or
/// removed already, gives nothing back, so doing this twice is harmless.
pub async fn remove_and_give_back(
    conn: &mut sqlx::AnyConnection,
    ids: &[i64],
) -> Result<usize, sqlx::Error> {
    type Removed = (String, i64, String, i64, i64, i64, Option<i64>);
    let mut removed = 0;
    for chunk in ids.chunks(500) {
        let list = super::integer_list(chunk);
        let rows: Vec<Removed> = sqlx::query_as(&format!(
            "DELETE FROM reservations WHERE id IN ({list}) \
             RETURNING kind, user_id, day, requests, tokens, cost_micro_usd, rate_bucket"
        ))
        .fetch_all(&mut *conn)
        .await?;
        removed += rows.len();
        let mut platform = usage::UsageChanges::default();
        let mut own_key = super::own_key_usage::UseChanges::default();
        for (kind, user_id, day, requests, tokens, cost, rate_bucket) in rows {
            if kind == Kind::OwnKey.as_str() {
                own_key.add(user_id, &day, -tokens, -cost);
            } else {
                platform.give_back(user_id, &day, requests, tokens, rate_bucket);
            }
        }
        platform.apply(&mut *conn).await?;
        own_key.apply(&mut *conn).await?;
    }
    Ok(removed)
}
