//! What the books writer is given to do for a call that ended.

use tokio::sync::oneshot;

use super::slots::LedgerSlot;
use crate::server::{db::ledger::LedgerRow, limits::Hold};

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
    Release { hold: Hold, id: i64, at: i64 },
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
