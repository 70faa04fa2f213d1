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
    admit::{self, Answer, ReserveAnswer, ReserveError, ReserveRequest, Reserved},
    leases::Leases,
    settle::{commit, within, write_one, SETTLE_TIMEOUT},
    slots::{LedgerSlot, SlotPool, SlotsBusy},
};
use crate::server::{
    calls::Instance,
    clock::{utc_day, Clock},
    db::{self, leases::Owed, ledger::LedgerRow, reserve_many::Ask, Db},
    limits::Hold,
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
/// How long shutdown waits for the last rows: bounded, so a database that
/// went away cannot hold the process for ever (what is left is logged).
const STOP_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);
/// How many times a call refused while another instance held an open
/// lease on the same allowance asks again (each after that lease's end).
const ASKS_WHILE_OTHERS_HOLD: usize = 4;
/// How long after its end a lease nobody asked past is closed by the
/// timer: long enough for a busy user's next call to close it as part of
/// its batch (at a bucket's edge every busy user's lease ends at once).
const LEASE_CLOSE_DELAY_MS: i64 = 30;

/// Everything one finished upstream call changes in the database.
#[derive(Debug, Clone)]
pub struct LedgerJob {
    pub row: LedgerRow,
    /// What was held for the call, to settle to the row's real use.
    pub hold: Option<Hold>,
    /// A user key that served the call (its "last used" moves).
    pub used_key_id: Option<i64>,
}

/// What the writer does for one finished call.
// It travels boxed (in `Queued`), so the variants' sizes cost nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub(super) enum Work {
    /// Write the call's row and settle its hold.
    Call(LedgerJob),
    /// The call never left keyward: give its hold back, write no row. The
    /// id is the release's own, so a retried batch applies it once.
    Release { hold: Hold, id: i64 },
}

/// Work in the queue, with the slot it frees and whoever waits for it.
pub(super) struct Queued {
    pub work: Work,
    pub _slot: LedgerSlot,
    pub committed: Option<oneshot::Sender<()>>,
    /// A write of it failed before: it may have been committed all the
    /// same (the answer to COMMIT was lost), so look before writing again.
    pub retried: bool,
}

enum Message {
    Job(Box<Queued>),
    Reserve(Box<ReserveRequest>),
    Stop(oneshot::Sender<()>),
}

#[derive(Clone)]
pub struct LedgerWriter {
    db: Db,
    queue: mpsc::UnboundedSender<Message>,
    slots: Arc<SlotPool>,
    /// Work that came after the writer stopped, written on its own.
    late: tokio_util::task::TaskTracker,
    leases: Arc<Leases>,
    clock: Arc<Clock>,
}

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

    /// Waits for room for one more call of `user_id` in flight (within
    /// the user's share), for a bounded time.
    pub async fn slot(&self, user_id: i64) -> Result<LedgerSlot, SlotsBusy> {
        self.slots.take(user_id).await
    }

    /// Asks for a call to be admitted against its plan's limits: at once
    /// from this instance's lease on the user's allowance if one holds
    /// enough, else by the writer. The answer owns the reservation; if the
    /// caller is gone by then, it is given back.
    pub async fn reserve(&self, mut ask: Ask, mut slot: LedgerSlot) -> ReserveAnswer {
        if let Some(reservation) = self.leases.try_admit(&ask) {
            let hold = Some(Hold::Platform(reservation));
            return Ok(Reserved::new(self.clone(), hold, slot));
        }
        let mut asked = 0;
        loop {
            asked += 1;
            let (reply, answer) = oneshot::channel();
            let request = Box::new(ReserveRequest {
                ask: ask.clone(),
                slot,
                reply,
            });
            if self.queue.send(Message::Reserve(request)).is_err() {
                return Err(ReserveError::Unavailable);
            }
            let (declined, returned) = match answer.await {
                Ok(Answer::Admitted(reserved)) => return Ok(reserved),
                Ok(Answer::Declined(declined, slot)) => (declined, slot),
                Ok(Answer::Unavailable) | Err(_) => return Err(ReserveError::Unavailable),
            };
            // Another instance's lease may give back what this call needs
            // when it ends: ask again then, a few times at most.
            let Some(until) = declined
                .others_open_until
                .filter(|_| asked < ASKS_WHILE_OTHERS_HOLD)
            else {
                return Err(ReserveError::Refused(declined.refusal));
            };
            let wait_ms =
                (until - self.clock.now_ms()).clamp(0, 1_000) as u64 + LEASE_CLOSE_DELAY_MS as u64;
            tokio::time::sleep(std::time::Duration::from_millis(wait_ms)).await;
            slot = returned;
            ask.now_ms = self.clock.now_ms();
            ask.day = utc_day(ask.now_ms);
        }
    }

    pub(super) fn leases(&self) -> &Leases {
        &self.leases
    }

    /// Platform calls admitted against a lease since start (`/metrics`).
    pub fn admitted_from_leases(&self) -> u64 {
        self.leases.admitted()
    }

    /// Leases taken ahead of a bucket's edge since start (`/metrics`).
    pub fn leases_taken_ahead(&self) -> u64 {
        self.leases.taken_ahead()
    }

    /// When to close leases that ended with no call asking for more: a
    /// while after the first one ends (on the monotonic clock). A busy
    /// user's next call closes their lease sooner, in the batch that grants
    /// the next one, without a transaction of its own.
    fn first_lease_end(&self) -> Option<tokio::time::Instant> {
        let end = self.leases.next_end()?;
        let in_ms = (end - self.clock.now_ms()).clamp(0, 60_000) + LEASE_CLOSE_DELAY_MS;
        Some(tokio::time::Instant::now() + std::time::Duration::from_millis(in_ms as u64))
    }

    /// When to take the next bucket's lease for a busy user ahead of their
    /// open lease's end (see `leases`).
    fn first_renewal(&self) -> Option<tokio::time::Instant> {
        let due = self.leases.next_renewal()?;
        let in_ms = (due - self.clock.now_ms()).clamp(0, 60_000);
        Some(tokio::time::Instant::now() + std::time::Duration::from_millis(in_ms as u64))
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
        let id = db::reservations::new_id();
        self.enqueue(Work::Release { hold, id }, slot, None);
    }

    /// Queues `work`; once the writer has stopped (shutdown), writes it on
    /// its own instead. Never blocks, so it serves calls dropped midway.
    fn enqueue(&self, work: Work, slot: LedgerSlot, committed: Option<oneshot::Sender<()>>) {
        let queued = Box::new(Queued {
            retried: false,
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
            // Logged by `write_one`; after shutdown there is no later.
            let _ = write_one(&db, &queued.work, queued.retried).await;
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

/// The writer's own connection, kept from batch to batch: SQLite keeps a
/// connection's page cache only while no other connection writes, and its
/// statements stay prepared. A connection that failed is replaced.
///
/// While the database cannot be reached, the writer does not ask it again
/// before a backoff ends (a fraction of a second, doubling up to
/// `MAX_OUTAGE_BACKOFF`): calls asking to be admitted meanwhile are told at
/// once that it is unavailable instead of each waiting out a connection
/// attempt, and finished calls wait in the queue.
pub(super) struct WriterConnection {
    pub db: Db,
    conn: Option<sqlx::pool::PoolConnection<sqlx::Any>>,
    outage: Option<Outage>,
}

#[derive(Clone, Copy)]
struct Outage {
    retry_at: tokio::time::Instant,
    backoff: std::time::Duration,
}

const FIRST_OUTAGE_BACKOFF: std::time::Duration = std::time::Duration::from_millis(200);
const MAX_OUTAGE_BACKOFF: std::time::Duration = std::time::Duration::from_secs(1);

impl WriterConnection {
    fn new(db: Db) -> Self {
        Self {
            db,
            conn: None,
            outage: None,
        }
    }

    /// The connection, opened again if the last one failed. On SQLite it
    /// never checkpoints the WAL itself (`db::checkpoint_in_background`
    /// does): a checkpoint syncs the file, and calls waiting to be admitted
    /// would wait for it. Fails at once, as timed out, while the database
    /// is known to be down and its backoff has not ended.
    pub async fn get(&mut self) -> Result<&mut sqlx::AnyConnection, sqlx::Error> {
        if self.is_down() {
            return Err(sqlx::Error::PoolTimedOut);
        }
        if self.conn.is_none() {
            let mut conn = self.db.acquire().await.inspect_err(|err| self.note(err))?;
            if conn.backend_name() == "SQLite" {
                sqlx::query("PRAGMA wal_autocheckpoint = 0")
                    .execute(&mut *conn)
                    .await?;
            }
            self.conn = Some(conn);
            if self.outage.take().is_some() {
                tracing::info!("the database answers again");
            }
        }
        let conn = self.conn.as_mut().expect("opened just above");
        Ok(&mut **conn)
    }

    /// Forgets a connection that failed with `err`.
    pub fn failed(&mut self, err: &sqlx::Error) {
        self.conn = None;
        self.note(err);
    }

    /// True while the database is known to be down and not yet due to be
    /// asked again.
    pub fn is_down(&self) -> bool {
        self.retry_at()
            .is_some_and(|at| tokio::time::Instant::now() < at)
    }

    /// Ends the backoff: the next `get` asks the database (a stop's last
    /// chance to write).
    pub fn retry_now(&mut self) {
        if let Some(outage) = &mut self.outage {
            outage.retry_at = tokio::time::Instant::now();
        }
    }

    /// When the database is next asked, if it is down.
    pub fn retry_at(&self) -> Option<tokio::time::Instant> {
        self.outage.map(|outage| outage.retry_at)
    }

    /// Starts or lengthens the backoff after a real attempt failed (the
    /// error `get` makes up while down changes nothing).
    fn note(&mut self, err: &sqlx::Error) {
        if !db::is_unreachable(err) || self.is_down() {
            return;
        }
        if self.outage.is_none() {
            tracing::error!(error = %err, "the database does not answer: admissions are refused and ledger rows kept until it does");
        }
        let backoff = self.outage.map_or(FIRST_OUTAGE_BACKOFF, |outage| {
            (outage.backoff * 2).min(MAX_OUTAGE_BACKOFF)
        });
        self.outage = Some(Outage {
            retry_at: tokio::time::Instant::now() + backoff,
            backoff,
        });
    }
}
