//! Admission in batches: every call asking to be admitted while the writer
//! was busy is answered by one transaction (`db::reserve_many`).

use tokio::sync::oneshot;

use super::writer::{LedgerSlot, LedgerWriter, WriterConnection};
use crate::server::{
    db::{
        reservations::Tag,
        reserve_many::{reserve_many, Ask},
        usage::Refusal,
    },
    limits::Hold,
};

/// One call waiting to be admitted.
pub(super) struct ReserveRequest {
    pub ask: Ask,
    pub slot: LedgerSlot,
    pub reply: oneshot::Sender<ReserveAnswer>,
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

/// Decides `requests` in one transaction and answers each. A caller that
/// is gone by then gets nothing, and its reservation is given back.
pub(super) async fn answer(
    conn: &mut WriterConnection,
    requests: Vec<ReserveRequest>,
    ledger: &LedgerWriter,
    tag: Tag<'_>,
) {
    let asks: Vec<Ask> = requests.iter().map(|r| r.ask.clone()).collect();
    // Twice at most: a batch that failed (a deadlock between instances on
    // Postgres, a connection that dropped) changed nothing.
    let mut decided = try_reserve(conn, &asks, tag).await;
    if decided.is_err() {
        decided = try_reserve(conn, &asks, tag).await;
    }
    let decided = match decided {
        Ok(decided) => decided,
        Err(err) => {
            tracing::error!(error = %err, calls = requests.len(), "could not admit calls");
            for request in requests {
                let _ = request.reply.send(Err(ReserveError::Unavailable));
            }
            return;
        }
    };
    for (request, answer) in requests.into_iter().zip(decided) {
        let answer = match answer {
            Ok(reservation) => Ok(Reserved::new(
                ledger.clone(),
                Some(Hold::Platform(reservation)),
                request.slot,
            )),
            Err(refusal) => Err(ReserveError::Refused(refusal)),
        };
        // A caller that left drops the answer here, and with it the hold.
        let _ = request.reply.send(answer);
    }
}

async fn try_reserve(
    conn: &mut WriterConnection,
    asks: &[Ask],
    tag: Tag<'_>,
) -> Result<Vec<Result<crate::server::db::usage::Reservation, Refusal>>, sqlx::Error> {
    let decided = match conn.get().await {
        Ok(open) => reserve_many(open, asks, tag).await,
        Err(err) => Err(err),
    };
    if decided.is_err() {
        conn.failed();
    }
    decided
}
