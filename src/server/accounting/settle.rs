//! Settlement: what a batch of finished calls changes in the database —
//! ledger rows, roll-ups, reservations settled or given back, the daily use
//! of users' own keys, keys' last use — in one transaction.

use super::writer::{Queued, Work, WriterConnection};
use crate::server::{
    accounting::LedgerJob,
    clock::utc_day,
    db::{self, ledger::LedgerRow, own_key_usage::UseChanges, Db},
    limits::Hold,
    routing::KeySource,
};

/// Writes `batch` in one transaction on the writer's connection, then
/// tells whoever waits.
pub(super) async fn commit(conn: &mut WriterConnection, batch: Vec<Queued>) {
    if batch.is_empty() {
        return;
    }
    let jobs: Vec<&Work> = batch.iter().map(|queued| &queued.work).collect();
    let written = match conn.get().await {
        Ok(open) => write_in(open, &jobs).await,
        Err(err) => Err(err),
    };
    if let Err(err) = written {
        conn.failed();
        // One bad row must not take the others with it: retry them one by one.
        tracing::warn!(error = %err, rows = jobs.len(), "ledger batch failed; writing rows one by one");
        for job in &jobs {
            write_one(&conn.db, job).await;
        }
    }
    // Dropping each entry frees its slot.
    for queued in batch {
        if let Some(done) = queued.committed {
            let _ = done.send(());
        }
    }
}

/// `jobs` in one transaction on `conn`.
async fn write_in(conn: &mut sqlx::AnyConnection, jobs: &[&Work]) -> Result<(), sqlx::Error> {
    let mut tx = sqlx::Connection::begin(conn).await?;
    apply(&mut tx, jobs).await?;
    tx.commit().await
}

pub(super) async fn write_one(db: &Db, work: &Work) {
    let written = match db.acquire().await {
        Ok(mut conn) => write_in(&mut conn, &[work]).await,
        Err(err) => Err(err),
    };
    if let Err(err) = written {
        tracing::error!(error = %err, "could not write a ledger row or release a reservation");
    }
}

/// Everything a batch changes: ledger rows, roll-ups, reservations, the
/// daily use of users' own keys, keys' last use.
async fn apply(conn: &mut sqlx::AnyConnection, work: &[&Work]) -> Result<(), sqlx::Error> {
    let jobs: Vec<&LedgerJob> = work
        .iter()
        .filter_map(|work| match work {
            Work::Call(job) => Some(job),
            Work::Release(_) => None,
        })
        .collect();
    let rows: Vec<&LedgerRow> = jobs.iter().map(|job| &job.row).collect();
    db::ledger::insert_many(conn, &rows).await?;
    db::rollups::record_many(conn, &rows).await?;
    let mut keys_used: std::collections::BTreeMap<i64, i64> = Default::default();
    let mut own_key_use = UseChanges::default();
    for work in work {
        if let Work::Release(hold) = work {
            release(conn, hold, &mut own_key_use).await?;
        }
    }
    for job in jobs {
        let row = &job.row;
        match &job.hold {
            Some(hold) if !row.reached_upstream => release(conn, hold, &mut own_key_use).await?,
            Some(Hold::Platform(reservation)) => {
                db::usage::settle(conn, reservation, row.total_tokens()).await?;
            }
            Some(Hold::OwnKey(hold)) => {
                db::own_key_usage::end_hold(conn, hold, &mut own_key_use).await?;
            }
            None => {}
        }
        if row.key_source == KeySource::User.as_str() {
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
    own_key_use.apply(conn).await?;
    for (key_id, at) in keys_used {
        db::user_keys::mark_used(conn, key_id, at).await?;
    }
    Ok(())
}

/// Gives a hold back whole.
async fn release(
    conn: &mut sqlx::AnyConnection,
    hold: &Hold,
    own_key_use: &mut UseChanges,
) -> Result<(), sqlx::Error> {
    match hold {
        Hold::Platform(reservation) => db::usage::release(conn, reservation).await,
        Hold::OwnKey(hold) => db::own_key_usage::end_hold(conn, hold, own_key_use).await,
    }
}
