//! The handle every call holds on the books writer: taking a place in
//! flight, asking to be admitted (at once from a lease, else by the
//! writer's next batch), and handing over finished calls to settle. The
//! writer task itself is in `writer`.

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use super::{
    leases::Leases,
    settle::write_one,
    slots::{LedgerSlot, SlotPool, SlotsBusy},
    work::{LedgerJob, Queued, Work},
};
use crate::server::{
    clock::{utc_day, Clock},
    db::{
        self,
        reserve_many::{Ask, Declined},
        usage::Refusal,
        Db,
    },
    limits::Hold,
};

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

/// What a handle sends the writer task.
pub(super) enum Message {
    Job(Box<Queued>),
    Reserve(Box<ReserveRequest>),
    Stop(oneshot::Sender<()>),
}

/// One call waiting to be admitted.
pub(super) struct ReserveRequest {
    pub ask: Ask,
    pub slot: LedgerSlot,
    pub reply: oneshot::Sender<Answer>,
}

/// The writer's answer to one request.
pub(super) enum Answer {
    Admitted(Reserved),
    /// Refused; the slot comes back for a second ask when another
    /// instance's open lease may give allowance back (`others_open_until`).
    Declined(Declined, LedgerSlot),
    Unavailable,
}

/// Why a call was not admitted.
#[derive(Debug)]
pub enum ReserveError {
    /// A limit would be overshot.
    Refused(Refusal),
    /// The database could not answer (or keyward is shutting down).
    Unavailable,
}

pub type ReserveAnswer = Result<Reserved, ReserveError>;

/// A hold on its way to its call, given back if dropped first (the caller
/// went away while it was being taken).
pub struct Reserved {
    ledger: LedgerWriter,
    held: Option<(Option<Hold>, LedgerSlot)>,
}

impl Reserved {
    pub fn new(ledger: LedgerWriter, hold: Option<Hold>, slot: LedgerSlot) -> Self {
        Self {
            ledger,
            held: Some((hold, slot)),
        }
    }

    /// The hold and slot, for the call that now owns them.
    pub fn take(mut self) -> (Option<Hold>, LedgerSlot) {
        self.held
            .take()
            .expect("a reservation is taken once, by its call")
    }
}

impl Drop for Reserved {
    fn drop(&mut self) {
        if let Some((Some(hold), slot)) = self.held.take() {
            self.ledger.release(hold, slot);
        }
    }
}

#[derive(Clone)]
pub struct LedgerWriter {
    pub(super) db: Db,
    pub(super) queue: mpsc::UnboundedSender<Message>,
    pub(super) slots: Arc<SlotPool>,
    /// Work that came after the writer stopped, written on its own.
    pub(super) late: tokio_util::task::TaskTracker,
    pub(super) leases: Arc<Leases>,
    pub(super) clock: Arc<Clock>,
}

impl LedgerWriter {
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
    pub(super) fn first_lease_end(&self) -> Option<tokio::time::Instant> {
        let end = self.leases.next_end()?;
        let in_ms = (end - self.clock.now_ms()).clamp(0, 60_000) + LEASE_CLOSE_DELAY_MS;
        Some(tokio::time::Instant::now() + std::time::Duration::from_millis(in_ms as u64))
    }

    /// When to take the next bucket's lease for a busy user ahead of their
    /// open lease's end (see `leases`).
    pub(super) fn first_renewal(&self) -> Option<tokio::time::Instant> {
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
        let at = self.clock.now_ms();
        self.enqueue(Work::Release { hold, id, at }, slot, None);
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
