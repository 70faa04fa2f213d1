//! Settlement: what a batch of finished calls changes in the database —
//! ledger rows, roll-ups, reservations settled or given back, the daily use
//! of users' own keys, keys' last use — in one transaction.

use std::collections::BTreeMap;

use super::{
    connection::{within, WriterConnection},
    work::{Queued, Work},
};
use crate::{
    model::domain::PaidBy,
    server::{
        accounting::LedgerJob,
        clock::utc_day,
        db::{
            self, ledger::LedgerRow, own_key_usage::UseChanges, reservations::Share,
            usage::UsageChanges, Db,
        },
        limits::Hold,
    },
};

/// Writes `batch` in one transaction on the writer's connection, then
/// tells whoever waits. When the database cannot be reached, nothing is
/// lost: the work not written comes back, to be tried again once it
/// answers (the slots it holds keep new calls from piling up meanwhile).
pub(super) async fn commit(conn: &mut WriterConnection, mut batch: Vec<Queued>) -> Vec<Queued> {
    if batch.is_empty() {
        return batch;
    }
    let retried = batch.iter().any(|queued| queued.retried);
    let jobs: Vec<&Work> = batch.iter().map(|queued| &queued.work).collect();
    let written = match conn.get().await {
        Ok(open) => within(SETTLE_TIMEOUT, write_in(open, &jobs, retried)).await,
        Err(err) => Err(err),
    };
    drop(jobs);
    let Err(err) = written else {
        batch.into_iter().for_each(done);
        return Vec::new();
    };
    conn.failed(&err);
    batch.iter_mut().for_each(|queued| queued.retried = true);
    if db::is_unreachable(&err) {
        tracing::warn!(error = %err, rows = batch.len(), "database unreachable; ledger rows kept to write later");
        return batch;
    }
    // One bad row must not take the others with it: retry them one by one.
    tracing::warn!(error = %err, rows = batch.len(), "ledger batch failed; writing rows one by one");
    let mut unwritten = Vec::new();
    let mut rows = batch.into_iter();
    for queued in rows.by_ref() {
        if let Err(err) = write_one(&conn.db, &queued.work, true).await {
            if db::is_unreachable(&err) {
                conn.failed(&err);
                unwritten.push(queued);
                break;
            }
        }
        done(queued);
    }
    unwritten.extend(rows);
    unwritten
}

/// How long a settlement transaction may take before it counts as lost
/// (a database that stopped answering without closing the connection).
/// Its rows are then retried, looked up first.
pub(super) const SETTLE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Tells whoever waits for `queued` that it is written; dropping it frees
/// its slot.
fn done(queued: Queued) {
    if let Some(done) = queued.committed {
        let _ = done.send(());
    }
}

/// `jobs` in one transaction on `conn`; after a failed try, without the
/// calls whose rows are in already (that try was committed after all).
async fn write_in(
    conn: &mut sqlx::AnyConnection,
    jobs: &[&Work],
    retried: bool,
) -> Result<(), sqlx::Error> {
    let mut tx = sqlx::Connection::begin(conn).await?;
    if retried {
        let fresh = not_written_yet(&mut tx, jobs).await?;
        apply(&mut tx, &fresh).await?;
    } else {
        apply(&mut tx, jobs).await?;
    }
    tx.commit().await
}

async fn not_written_yet<'a>(
    conn: &mut sqlx::AnyConnection,
    jobs: &[&'a Work],
) -> Result<Vec<&'a Work>, sqlx::Error> {
    let call_ids: Vec<i64> = jobs
        .iter()
        .filter_map(|work| match work {
            Work::Call(job) => job.row.call_id,
            Work::Release { .. } => None,
        })
        .collect();
    let release_ids: Vec<i64> = jobs
        .iter()
        .filter_map(|work| match work {
            Work::Release { id, .. } => Some(*id),
            Work::Call(_) => None,
        })
        .collect();
    let written = db::ledger::already_written(conn, &call_ids).await?;
    let released = db::reservations::already_released(conn, &release_ids).await?;
    if !written.is_empty() || !released.is_empty() {
        tracing::warn!(
            rows = written.len(),
            releases = released.len(),
            "work was committed by an earlier try; not applied again"
        );
    }
    Ok(jobs
        .iter()
        .copied()
        .filter(|work| match work {
            Work::Call(job) => job.row.call_id.is_none_or(|id| !written.contains(&id)),
            Work::Release { id, .. } => !released.contains(id),
        })
        .collect())
}

pub(super) async fn write_one(db: &Db, work: &Work, retried: bool) -> Result<(), sqlx::Error> {
    let written = match within(SETTLE_TIMEOUT, db.acquire()).await {
        Ok(mut conn) => within(SETTLE_TIMEOUT, write_in(&mut conn, &[work], retried)).await,
        Err(err) => Err(err),
    };
    if let Err(err) = &written {
        tracing::error!(error = %err, "could not write a ledger row or release a reservation");
    }
    written
}

/// Everything a batch changes: ledger rows, roll-ups, reservations, the
/// daily use of users' own keys, keys' last use. Reservations are taken in
/// a few statements and use is summed per user, so a batch costs a few
/// statements per user, not per call.
async fn apply(conn: &mut sqlx::AnyConnection, work: &[&Work]) -> Result<(), sqlx::Error> {
    let jobs: Vec<&LedgerJob> = work
        .iter()
        .filter_map(|work| match work {
            Work::Call(job) => Some(job),
            Work::Release { .. } => None,
        })
        .collect();
    let rows: Vec<&LedgerRow> = jobs.iter().map(|job| &job.row).collect();
    if conn.backend_name() != "SQLite" {
        // The order every writer of a user's books locks in first, so
        // instances settling and admitting the same users cannot deadlock.
        let users = rows
            .iter()
            .map(|row| row.user_id)
            .chain(work.iter().filter_map(|work| match work {
                Work::Release { hold, .. } => Some(hold.user_id()),
                Work::Call(_) => None,
            }));
        db::book_locks::lock_users_in_order(conn, users).await?;
    }
    db::ledger::insert_many(conn, &rows).await?;
    db::rollups::record_many(conn, &rows).await?;
    let holds = work.iter().filter_map(|work| match work {
        Work::Call(job) => job.hold.as_ref(),
        Work::Release { hold, .. } => Some(hold),
    });
    // A platform call takes its share out of its (possibly shared) row; a
    // hold on a user's own key has a row of its own.
    let mut shares: BTreeMap<i64, Share> = BTreeMap::new();
    let mut own_key_rows = Vec::new();
    for hold in holds {
        match hold {
            Hold::Platform(reservation) => {
                let share = shares.entry(reservation.id).or_default();
                share.requests += 1;
                share.tokens = share.tokens.saturating_add(reservation.tokens);
            }
            Hold::OwnKey(hold) => own_key_rows.push(hold.reservation_id),
        }
    }
    let (mut taken, emptied) = db::reservations::consume_many(conn, &shares).await?;
    taken.extend(db::reservations::take_many(conn, &own_key_rows).await?);
    let mut platform_use = UsageChanges::default();
    for row in emptied {
        platform_use.give_back_tokens(row.user_id, &row.day, row.tokens);
    }
    let mut own_key_use = UseChanges::default();
    let give_back = |hold: &Hold, platform: &mut UsageChanges, own_key: &mut UseChanges| match hold
    {
        Hold::Platform(reservation) => {
            platform.release(reservation, taken.contains(&reservation.id))
        }
        Hold::OwnKey(hold) if taken.contains(&hold.reservation_id) => own_key.release(hold),
        Hold::OwnKey(_) => {}
    };
    let mut releases = Vec::new();
    for work in work {
        if let Work::Release { hold, id, at } = work {
            give_back(hold, &mut platform_use, &mut own_key_use);
            releases.push((*id, *at));
        }
    }
    db::reservations::note_released(conn, &releases).await?;
    let mut keys_used: std::collections::BTreeMap<i64, i64> = Default::default();
    for job in jobs {
        let row = &job.row;
        match &job.hold {
            Some(hold) if !row.reached_upstream => {
                give_back(hold, &mut platform_use, &mut own_key_use)
            }
            Some(Hold::Platform(reservation)) => {
                let was_taken = taken.contains(&reservation.id);
                platform_use.settle(reservation, row.total_tokens(), was_taken);
            }
            Some(Hold::OwnKey(hold)) if taken.contains(&hold.reservation_id) => {
                own_key_use.release(hold)
            }
            Some(Hold::OwnKey(_)) | None => {}
        }
        if row.paid_by == PaidBy::OwnKey {
            // Counted on the held day, so a call across midnight leaves nothing behind.
            let day = match &job.hold {
                Some(Hold::OwnKey(hold)) => hold.day.clone(),
                _ => utc_day(row.at),
            };
            own_key_use.add(row.user_id, &day, row.total_tokens(), row.cost_micro_usd);
        }
        if let Some(key_id) = job.used_key_id {
            let at = keys_used.entry(key_id).or_default();
            *at = (*at).max(job.row.at);
        }
    }
    platform_use.apply(conn).await?;
    own_key_use.apply(conn).await?;
    for (key_id, at) in keys_used {
        db::user_keys::mark_used(conn, key_id, at).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(user_id: i64, call_id: i64) -> Work {
        Work::Call(LedgerJob {
            row: LedgerRow {
                input_tokens: 10,
                call_id: Some(call_id),
                ..LedgerRow::new(
                    0,
                    user_id,
                    PaidBy::OwnKey,
                    "claude-haiku-4-5".into(),
                    "200".into(),
                )
            },
            hold: None,
            used_key_id: None,
        })
    }

    /// A fresh SQLite database (its file's path) with one account.
    async fn database_with_a_user() -> (Db, std::path::PathBuf, db::users::UserRow) {
        let path =
            std::env::temp_dir().join(format!("keyward-settle-{}.db", rand::random::<u64>()));
        let db = db::connect(&format!("sqlite:{}?mode=rwc", path.display()))
            .await
            .unwrap();
        db::migrate(&db, db::Backend::Sqlite).await.unwrap();
        let user = db::users::insert(&db, "ada@example.com", "hash", None, 0)
            .await
            .unwrap();
        (db, path, user)
    }

    /// A batch whose COMMIT reached the database but whose answer was lost
    /// is retried: the rows that are in already are not written again.
    #[tokio::test]
    async fn a_retried_batch_skips_the_rows_its_lost_commit_wrote() {
        let (db, path, user) = database_with_a_user().await;
        let (first, second) = (call(user.id, 7), call(user.id, 8));
        let mut conn = db.acquire().await.unwrap();
        write_in(&mut conn, &[&first], false).await.unwrap();
        write_in(&mut conn, &[&first, &second], true).await.unwrap();
        let ids: Vec<i64> = sqlx::query_scalar("SELECT call_id FROM usage_ledger ORDER BY call_id")
            .fetch_all(&mut *conn)
            .await
            .unwrap();
        assert_eq!(ids, [7, 8]);
        drop(conn);
        db.close().await;
        let _ = std::fs::remove_file(path);
    }

    /// The same for a call that never left keyward: its hold, on a row
    /// two calls share, is given back once, not once per try.
    #[tokio::test]
    async fn a_retried_batch_gives_a_hold_back_once() {
        use db::{
            reservations::Tag,
            reserve_many::{reserve_many, Ask},
            usage::Limits,
        };
        let (db, path, user) = database_with_a_user().await;
        let limits = Limits {
            requests_per_minute: None,
            requests_per_day: Some(10),
            tokens_per_day: None,
        };
        let ask = || Ask::new(user.id, "2026-12-07".into(), 1_000, 50, limits);
        let tag = Tag {
            instance: "here",
            expires_at: i64::MAX,
        };
        let mut conn = db.acquire().await.unwrap();
        let decided = reserve_many(&mut conn, &[ask(), ask()], &Default::default(), &[], tag)
            .await
            .unwrap();
        let reservation = decided.answers[0].clone().unwrap();
        let release = Work::Release {
            hold: Hold::Platform(reservation),
            id: 9,
            at: 1_000,
        };
        write_in(&mut conn, &[&release], false).await.unwrap();
        write_in(&mut conn, &[&release], true).await.unwrap();
        let (requests, tokens): (i64, i64) =
            sqlx::query_as("SELECT requests, tokens FROM usage_daily")
                .fetch_one(&mut *conn)
                .await
                .unwrap();
        assert_eq!((requests, tokens), (1, 50), "the other call still counts");
        drop(conn);
        db.close().await;
        let _ = std::fs::remove_file(path);
    }
}
