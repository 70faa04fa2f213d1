//! Ledger writes with group commit: calls that end at the same time share
//! one database transaction, so the ledger keeps up with the gateway
//! without one commit per request. A chat turn waits for its row to be
//! committed; a gateway call only queues it (its response does not wait on
//! the database). Reservations of calls that never left keyward are given
//! back through the same queue. Nothing queued is lost at shutdown: the
//! writer drains its queue before it stops, and work that arrives after
//! that is written directly.

use tokio::sync::{mpsc, oneshot};

use crate::server::{
    clock::utc_day,
    db::{self, ledger::LedgerRow, own_key_usage::UseChanges, Db},
    limits::Hold,
    routing::KeySource,
};

/// Rows per transaction at most.
const MAX_BATCH: usize = 256;
/// Under steady load, transactions start at most this often; rows that end
/// in between wait for the next one. A transaction costs a dozen round trips
/// to the database whatever its size, so this keeps the writer's cost per
/// row low. A row after a quiet spell is written at once.
const COMMIT_INTERVAL: std::time::Duration = std::time::Duration::from_millis(10);
/// Calls that may be in flight before new ones wait: when the database
/// falls behind, callers slow down instead of queueing without bound. Every
/// queued row holds one of these, so they also bound the queue.
const MAX_IN_FLIGHT: usize = 1024;
/// How long shutdown waits for the last rows: bounded, so a database that
/// went away cannot hold the process for ever (what is left is logged).
const STOP_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

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

/// What the writer does for one call.
// It travels boxed (in `Queued`), so the variants' sizes cost nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
enum Work {
    /// Write the call's row and settle its hold.
    Call(LedgerJob),
    /// The call never left keyward: give its hold back, write no row.
    Release(Hold),
}

/// Work in the queue, with the slot it frees and whoever waits for it.
struct Queued {
    work: Work,
    _slot: LedgerSlot,
    committed: Option<oneshot::Sender<()>>,
}

enum Message {
    Job(Box<Queued>),
    Stop(oneshot::Sender<()>),
}

#[derive(Clone)]
pub struct LedgerWriter {
    db: Db,
    queue: mpsc::UnboundedSender<Message>,
    slots: std::sync::Arc<tokio::sync::Semaphore>,
    /// Work that came after the writer stopped, written on its own.
    late: tokio_util::task::TaskTracker,
}

impl LedgerWriter {
    /// Starts the writer task on the current runtime.
    pub fn start(db: Db) -> Self {
        let (queue, inbox) = mpsc::unbounded_channel();
        tokio::spawn(run(db.clone(), inbox));
        let slots = std::sync::Arc::new(tokio::sync::Semaphore::new(MAX_IN_FLIGHT));
        Self {
            db,
            queue,
            slots,
            late: tokio_util::task::TaskTracker::new(),
        }
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

    /// Queues `job`; the receiver hears when it is committed (dropping it
    /// is fine: gateway calls do not wait on the database).
    pub fn submit(&self, job: LedgerJob, slot: LedgerSlot) -> oneshot::Receiver<()> {
        let (done, committed) = oneshot::channel();
        self.enqueue(Work::Call(job), slot, Some(done));
        committed
    }

    /// Queues giving `hold` back (its call never left keyward).
    pub fn release(&self, hold: Hold, slot: LedgerSlot) {
        self.enqueue(Work::Release(hold), slot, None);
    }

    /// Queues `work`; once the writer has stopped (shutdown), writes it on
    /// its own instead. Never blocks, so it serves calls dropped midway.
    fn enqueue(&self, work: Work, slot: LedgerSlot, committed: Option<oneshot::Sender<()>>) {
        let queued = Box::new(Queued {
            work,
            _slot: slot,
            committed,
        });
        let Err(mpsc::error::SendError(Message::Job(queued))) =
            self.queue.send(Message::Job(queued))
        else {
            return;
        };
        let db = self.db.clone();
        let write = async move {
            write_one(&db, &queued.work).await;
            if let Some(done) = queued.committed {
                let _ = done.send(());
            }
        };
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => drop(self.late.spawn_on(write, &runtime)),
            Err(_) => tracing::error!("ledger work came after the runtime stopped"),
        }
    }

    /// Commits everything queued so far and stops the writer; later rows
    /// are written one by one, and waited for too. Each wait is bounded.
    pub async fn stop(&self) {
        let (done, stopped) = oneshot::channel();
        if self.queue.send(Message::Stop(done)).is_ok()
            && tokio::time::timeout(STOP_TIMEOUT, stopped).await.is_err()
        {
            tracing::error!(
                "the database did not take the last ledger rows in time; they are lost"
            );
        }
        self.late.close();
        if tokio::time::timeout(STOP_TIMEOUT, self.late.wait())
            .await
            .is_err()
        {
            tracing::error!(
                rows = self.late.len(),
                "ledger rows that came after shutdown could not be written in time"
            );
        }
    }
}

async fn run(db: Db, mut inbox: mpsc::UnboundedReceiver<Message>) {
    let mut conn = WriterConnection { db, conn: None };
    let mut last_commit: Option<tokio::time::Instant> = None;
    while let Some(first) = inbox.recv().await {
        let mut batch = Vec::new();
        let stop = gather(first, &mut inbox, &mut batch);
        let too_soon = last_commit.filter(|at| at.elapsed() < COMMIT_INTERVAL);
        if let Some(at) = too_soon.filter(|_| stop.is_none() && batch.len() < MAX_BATCH) {
            tokio::time::sleep_until(at + COMMIT_INTERVAL).await;
            if let Ok(next) = inbox.try_recv() {
                if let Some(stop) = gather(next, &mut inbox, &mut batch) {
                    commit(&mut conn, batch).await;
                    return finish(&mut conn, inbox, stop).await;
                }
            }
        }
        last_commit = Some(tokio::time::Instant::now());
        commit(&mut conn, batch).await;
        if let Some(done) = stop {
            return finish(&mut conn, inbox, done).await;
        }
    }
}

/// Moves `first` and whatever else is queued (up to a batch) into `batch`;
/// returns a stop request if one came.
fn gather(
    first: Message,
    inbox: &mut mpsc::UnboundedReceiver<Message>,
    batch: &mut Vec<Queued>,
) -> Option<oneshot::Sender<()>> {
    let mut next = Some(first);
    while let Some(message) = next.take() {
        match message {
            Message::Job(queued) => batch.push(*queued),
            Message::Stop(done) => return Some(done),
        }
        if batch.len() < MAX_BATCH {
            next = inbox.try_recv().ok();
        }
    }
    None
}

/// Commits what raced the stop request, then says the writer is done.
async fn finish(
    conn: &mut WriterConnection,
    mut inbox: mpsc::UnboundedReceiver<Message>,
    done: oneshot::Sender<()>,
) {
    inbox.close();
    let mut rest = Vec::new();
    while let Ok(Message::Job(queued)) = inbox.try_recv() {
        rest.push(*queued);
    }
    commit(conn, rest).await;
    let _ = done.send(());
}

/// The writer's own connection, kept from batch to batch: SQLite keeps a
/// connection's page cache only while no other connection writes, and its
/// statements stay prepared. A connection that failed is replaced.
struct WriterConnection {
    db: Db,
    conn: Option<sqlx::pool::PoolConnection<sqlx::Any>>,
}

impl WriterConnection {
    async fn write(&mut self, jobs: &[&Work]) -> Result<(), sqlx::Error> {
        let conn = match &mut self.conn {
            Some(conn) => conn,
            None => self.conn.insert(self.db.acquire().await?),
        };
        let written = write_in(conn, jobs).await;
        if written.is_err() {
            self.conn = None;
        }
        written
    }
}

async fn commit(conn: &mut WriterConnection, batch: Vec<Queued>) {
    if batch.is_empty() {
        return;
    }
    let jobs: Vec<&Work> = batch.iter().map(|queued| &queued.work).collect();
    if let Err(err) = conn.write(&jobs).await {
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

async fn write_one(db: &Db, work: &Work) {
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
