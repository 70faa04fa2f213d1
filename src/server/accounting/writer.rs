//! The books writer: one task, on a connection of its own, that makes every
//! change to the platform's books — admitting calls against the plans'
//! limits (`admit`), and writing the ledger and settling reservations
//! (`settle`). On SQLite that makes it the only writer on the hot path, so
//! writers queue here instead of sleeping in SQLite's busy handler.
//!
//! Both kinds of work are batched. Calls asking to be admitted are answered
//! together by one transaction as soon as the writer is free: admission is
//! on every call's path. Finished calls share a transaction too, at most
//! one every `COMMIT_INTERVAL` under load: a chat turn waits for its row, a
//! gateway call only queues it. Reservations of calls that never left
//! keyward are given back through the same queue. Nothing queued is lost at
//! shutdown: the writer drains its queue before it stops, and work that
//! arrives after that is written directly.

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use super::{
    admit,
    connection::{within, WriterConnection, FIRST_OUTAGE_BACKOFF},
    handle::{LedgerWriter, Message, ReserveRequest},
    settle::{commit, SETTLE_TIMEOUT},
    slots::SlotPool,
    work::Queued,
};
use crate::server::{
    calls::Instance,
    clock::Clock,
    db::{self, leases::Owed, Db},
};

/// Messages taken from the queue per pass at most (asks answered by one
/// transaction, finished calls queued for settling).
const MAX_BATCH: usize = 256;
/// Finished calls settled per transaction at most. Calls waiting to be
/// admitted are answered between two such transactions, so this bounds how
/// long settling can keep them waiting.
const SETTLE_CHUNK: usize = 64;
/// Under steady load, settlement transactions start at most this often;
/// rows that end in between wait for the next one. A transaction costs a
/// dozen round trips to the database whatever its size, so this keeps the
/// writer's cost per row low. A row after a quiet spell is written at once.
const COMMIT_INTERVAL: std::time::Duration = std::time::Duration::from_millis(10);
/// Calls that may be in flight before new ones wait: when the database
/// falls behind, callers slow down instead of queueing without bound. Every
/// queued row holds one of these, so they also bound the queue.
const MAX_IN_FLIGHT: usize = 1024;
/// The share of those one user may hold.
const MAX_IN_FLIGHT_PER_USER: usize = 256;
/// How long a call waits for a place before it is refused as overloaded.
const SLOT_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

impl LedgerWriter {
    /// Starts the writer task on the current runtime; reservations it
    /// takes carry `instance`'s name, leases end by `clock`.
    pub fn start(db: Db, instance: Arc<Instance>, clock: Arc<Clock>) -> Self {
        let (queue, inbox) = mpsc::unbounded_channel();
        let writer = Self {
            db: db.clone(),
            queue,
            slots: Arc::new(SlotPool::new(
                MAX_IN_FLIGHT,
                MAX_IN_FLIGHT_PER_USER,
                SLOT_WAIT,
            )),
            late: tokio_util::task::TaskTracker::new(),
            leases: Arc::default(),
            clock,
        };
        tokio::spawn(run(db, inbox, writer.clone(), instance));
        writer
    }
}

/// What arrived since the writer last looked.
#[derive(Default)]
struct Arrived {
    reserves: Vec<ReserveRequest>,
    stop: Option<oneshot::Sender<()>>,
}

async fn run(
    db: Db,
    mut inbox: mpsc::UnboundedReceiver<Message>,
    writer: LedgerWriter,
    instance: Arc<Instance>,
) {
    let mut conn = WriterConnection::new(db);
    let mut finished: Vec<Queued> = Vec::new();
    // What the database did not take back yet (it was down): given back
    // with the next settlement.
    let mut owed = Owed::default();
    let mut last_commit: Option<tokio::time::Instant> = None;
    loop {
        // Finished calls wait for the commit interval (or, while the
        // database is down, for the next try); asks never do.
        let settle_due = last_commit
            .map(|at| (at + COMMIT_INTERVAL).max(conn.retry_at().unwrap_or(at)))
            .filter(|_| !finished.is_empty() || !owed.is_empty());
        let first = tokio::select! {
            message = inbox.recv() => message,
            () = sleep_until(settle_due) => {
                last_commit = Some(tokio::time::Instant::now());
                owed = give_back(&mut conn, owed).await;
                settle_next(&mut conn, &mut finished).await;
                continue;
            }
            () = sleep_until(writer.first_renewal()) => {
                let now_ms = writer.clock.now_ms();
                let kept_back = admit::take_ahead(&mut conn, &writer, now_ms, instance.tag()).await;
                if !kept_back.is_empty() {
                    owed.add(kept_back);
                    last_commit.get_or_insert_with(tokio::time::Instant::now);
                }
                continue;
            }
            () = sleep_until(writer.first_lease_end()) => {
                let ended = Owed::leases(writer.leases.close_ended(writer.clock.now_ms()));
                owed.add(give_back(&mut conn, ended).await);
                last_commit.get_or_insert_with(tokio::time::Instant::now);
                continue;
            }
        };
        // The writer holds a sender itself (for the guards it hands out),
        // so the queue never ends on its own: `stop` ends the loop.
        let Some(first) = first else {
            commit_before_stop(&mut conn, finished).await;
            return;
        };
        let mut arrived = Arrived::default();
        gather(first, &mut inbox, &mut finished, &mut arrived);
        if !arrived.reserves.is_empty() {
            let closed = admit::answer(&mut conn, arrived.reserves, &writer, instance.tag()).await;
            if !closed.is_empty() {
                owed.add(closed);
                last_commit.get_or_insert_with(tokio::time::Instant::now);
            }
        }
        if let Some(done) = arrived.stop {
            return finish(&mut conn, inbox, &writer, &instance, finished, owed, done).await;
        }
        let quiet = last_commit.is_none_or(|at| at.elapsed() >= COMMIT_INTERVAL);
        if !finished.is_empty() && (quiet || finished.len() >= MAX_BATCH) {
            last_commit = Some(tokio::time::Instant::now());
            // While the database is down the timer settles them, at the
            // end of the backoff.
            if !conn.is_down() {
                settle_next(&mut conn, &mut finished).await;
            }
        }
    }
}

/// Settles the oldest finished calls; what the database could not take
/// goes back to the front of the queue.
async fn settle_next(conn: &mut WriterConnection, finished: &mut Vec<Queued>) {
    let mut unwritten = commit(conn, next_chunk(finished)).await;
    if !unwritten.is_empty() {
        unwritten.append(finished);
        *finished = unwritten;
    }
}

/// How long a stop keeps trying to write the last rows while the database
/// is down: within `STOP_TIMEOUT`, which bounds the whole stop.
const LAST_ROWS_RETRY_FOR: std::time::Duration = std::time::Duration::from_secs(7);

/// Writes `rows` before the writer stops, trying again (whatever the
/// backoff) while the database is down, for a bounded time; logs what is
/// lost if it stays down.
async fn commit_before_stop(conn: &mut WriterConnection, mut rows: Vec<Queued>) {
    let deadline = tokio::time::Instant::now() + LAST_ROWS_RETRY_FOR;
    loop {
        conn.retry_now();
        rows = commit(conn, rows).await;
        if rows.is_empty() || tokio::time::Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(FIRST_OUTAGE_BACKOFF).await;
    }
    if !rows.is_empty() {
        tracing::error!(
            rows = rows.len(),
            "the database did not come back before shutdown; these ledger rows are lost"
        );
    }
}

/// The oldest finished calls, up to a chunk; the rest wait their turn
/// after the asks that arrive meanwhile.
fn next_chunk(finished: &mut Vec<Queued>) -> Vec<Queued> {
    let rest = finished.split_off(finished.len().min(SETTLE_CHUNK));
    std::mem::replace(finished, rest)
}

/// Sorts `first` and whatever else is queued into finished calls and asks,
/// up to a batch of each; notes a stop request.
fn gather(
    first: Message,
    inbox: &mut mpsc::UnboundedReceiver<Message>,
    finished: &mut Vec<Queued>,
    arrived: &mut Arrived,
) {
    let mut next = Some(first);
    // Counted per pass: a backlog of finished calls must not keep the
    // asks that arrive meanwhile from being gathered.
    let mut pulled = 0;
    while let Some(message) = next.take() {
        pulled += 1;
        match message {
            Message::Job(queued) => finished.push(*queued),
            Message::Reserve(request) => arrived.reserves.push(*request),
            Message::Stop(done) => {
                arrived.stop = Some(done);
                return;
            }
        }
        if pulled < MAX_BATCH {
            next = inbox.try_recv().ok();
        }
    }
}

/// Answers and commits what raced the stop request, then says the writer
/// is done.
async fn finish(
    conn: &mut WriterConnection,
    mut inbox: mpsc::UnboundedReceiver<Message>,
    writer: &LedgerWriter,
    instance: &Instance,
    mut rest: Vec<Queued>,
    mut owed: Owed,
    done: oneshot::Sender<()>,
) {
    inbox.close();
    let mut reserves = Vec::new();
    while let Ok(message) = inbox.try_recv() {
        match message {
            Message::Job(queued) => rest.push(*queued),
            Message::Reserve(request) => reserves.push(*request),
            Message::Stop(_) => {}
        }
    }
    if !reserves.is_empty() {
        owed.add(admit::answer(conn, reserves, writer, instance.tag()).await);
    }
    commit_before_stop(conn, rest).await;
    owed.add(Owed::leases(writer.leases.close_all()));
    let left = give_back(conn, owed).await;
    if !left.is_empty() {
        tracing::error!(
            rows = left.count(),
            "the database is down: reservations left to the sweep"
        );
    }
    let _ = done.send(());
}

/// Sleeps until `at`, or for ever.
async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Gives back what the books are `owed`, trying twice; returns it if the
/// database is down, to be given back once it answers. After any other
/// failure the rows stay counted until they expire and a sweep releases
/// them: erring that way only refuses.
async fn give_back(conn: &mut WriterConnection, owed: Owed) -> Owed {
    if owed.is_empty() {
        return owed;
    }
    for _ in 0..2 {
        let returned = match conn.get().await {
            Ok(open) => within(SETTLE_TIMEOUT, db::leases::give_back_now(open, &owed)).await,
            Err(err) => Err(err),
        };
        match returned {
            Ok(()) => return Owed::default(),
            Err(err) => {
                conn.failed(&err);
                tracing::warn!(error = %err, rows = owed.count(), "could not give reservations back");
                if conn.is_down() {
                    return owed;
                }
            }
        }
    }
    tracing::error!(rows = owed.count(), "reservations left to the sweep");
    Owed::default()
}
