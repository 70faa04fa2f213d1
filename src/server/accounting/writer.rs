//! Ledger writes with group commit: calls that end at the same time share
//! one database transaction, so the ledger keeps up with the gateway
//! without one commit per request. Each caller still waits for its own row
//! to be committed, and nothing queued is lost at shutdown: the writer
//! drains its queue before it stops, and a row that arrives after that is
//! written directly.

use tokio::sync::{mpsc, oneshot};

use crate::server::{
    clock::utc_day,
    db::{self, ledger::LedgerRow, own_key_usage::UseChanges, Db},
    limits::Hold,
    routing::KeySource,
};

/// Rows per transaction at most.
const MAX_BATCH: usize = 256;
const QUEUE: usize = 4096;
/// Calls that may be in flight before new ones wait: when the database
/// falls behind, callers slow down instead of queueing without bound.
const MAX_IN_FLIGHT: usize = 1024;

/// A place for one call's ledger row, held from the call's start until its
/// row is committed.
#[derive(Debug)]
pub struct LedgerSlot(#[allow(dead_code)] tokio::sync::OwnedSemaphorePermit);

/// Everything one finished upstream call changes in the database.
#[derive(Debug, Clone)]
pub struct LedgerJob {
    pub row: LedgerRow,
    /// What was held for the call, to settle to the row's real use.
    pub hold: Option<Hold>,
    /// A user key that served the call (its "last used" moves).
    pub used_key_id: Option<i64>,
}

enum Message {
    Job(Box<LedgerJob>, oneshot::Sender<()>),
    Stop(oneshot::Sender<()>),
}

#[derive(Clone)]
pub struct LedgerWriter {
    db: Db,
    queue: mpsc::Sender<Message>,
    slots: std::sync::Arc<tokio::sync::Semaphore>,
}

impl LedgerWriter {
    /// Starts the writer task on the current runtime.
    pub fn start(db: Db) -> Self {
        let (queue, inbox) = mpsc::channel(QUEUE);
        tokio::spawn(run(db.clone(), inbox));
        let slots = std::sync::Arc::new(tokio::sync::Semaphore::new(MAX_IN_FLIGHT));
        Self { db, queue, slots }
    }

    /// Waits for room for one more call in flight.
    pub async fn slot(&self) -> LedgerSlot {
        let permit = self
            .slots
            .clone()
            .acquire_owned()
            .await
            .expect("the slot semaphore is never closed");
        LedgerSlot(permit)
    }

    /// Writes `job` and returns once it is committed.
    pub async fn write(&self, job: LedgerJob) {
        let (done, committed) = oneshot::channel();
        match self.queue.send(Message::Job(Box::new(job), done)).await {
            // An error here means the writer stopped mid-batch; it logged why.
            Ok(()) => drop(committed.await),
            Err(mpsc::error::SendError(Message::Job(job, _))) => write_one(&self.db, &job).await,
            Err(_) => {}
        }
    }

    /// Commits everything queued so far and stops the writer; later rows
    /// are written one by one.
    pub async fn stop(&self) {
        let (done, stopped) = oneshot::channel();
        if self.queue.send(Message::Stop(done)).await.is_ok() {
            let _ = stopped.await;
        }
    }
}

async fn run(db: Db, mut inbox: mpsc::Receiver<Message>) {
    while let Some(first) = inbox.recv().await {
        let mut batch = Vec::new();
        let mut stop = None;
        let mut next = Some(first);
        while let Some(message) = next.take() {
            match message {
                Message::Job(job, done) => batch.push((*job, done)),
                Message::Stop(done) => {
                    stop = Some(done);
                    break;
                }
            }
            if batch.len() < MAX_BATCH {
                next = inbox.try_recv().ok();
            }
        }
        commit(&db, batch).await;
        if let Some(done) = stop {
            inbox.close();
            // Drain what raced the stop message, then say we are done.
            let mut rest = Vec::new();
            while let Ok(Message::Job(job, done)) = inbox.try_recv() {
                rest.push((*job, done));
            }
            commit(&db, rest).await;
            let _ = done.send(());
            return;
        }
    }
}

async fn commit(db: &Db, batch: Vec<(LedgerJob, oneshot::Sender<()>)>) {
    if batch.is_empty() {
        return;
    }
    let jobs: Vec<&LedgerJob> = batch.iter().map(|(job, _)| job).collect();
    if let Err(err) = write_batch(db, &jobs).await {
        // One bad row must not take the others with it: retry them one by one.
        tracing::warn!(error = %err, rows = jobs.len(), "ledger batch failed; writing rows one by one");
        for job in &jobs {
            write_one(db, job).await;
        }
    }
    for (_, done) in batch {
        let _ = done.send(());
    }
}

async fn write_batch(db: &Db, jobs: &[&LedgerJob]) -> Result<(), sqlx::Error> {
    let mut tx = db.begin().await?;
    apply(&mut tx, jobs).await?;
    tx.commit().await
}

async fn write_one(db: &Db, job: &LedgerJob) {
    if let Err(err) = write_batch(db, &[job]).await {
        tracing::error!(error = %err, user_id = job.row.user_id, "could not write a ledger row");
    }
}

/// Everything a batch changes: ledger rows, roll-ups, reservations, the
/// daily use of users' own keys, keys' last use.
async fn apply(conn: &mut sqlx::AnyConnection, jobs: &[&LedgerJob]) -> Result<(), sqlx::Error> {
    let rows: Vec<&LedgerRow> = jobs.iter().map(|job| &job.row).collect();
    db::ledger::insert_many(conn, &rows).await?;
    db::rollups::record_many(conn, &rows).await?;
    let mut keys_used: std::collections::BTreeMap<i64, i64> = Default::default();
    let mut own_key_use = UseChanges::default();
    for job in jobs {
        let row = &job.row;
        match &job.hold {
            Some(Hold::Platform(reservation)) => {
                db::usage::finish(conn, reservation, row.total_tokens()).await?;
            }
            Some(Hold::OwnKey(hold)) => own_key_use.release(hold),
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
