//! Admission in batches: every call asking to be admitted while the writer
//! was busy is answered by one transaction (`db::reserve_many`), or by a
//! lease this instance holds (`leases`).

use std::collections::{BTreeSet, HashMap};

use super::{
    connection::{within, WriterConnection},
    handle::{Answer, LedgerWriter, ReserveRequest, Reserved},
};
use crate::server::{
    db::{
        leases::{Owed, Unused},
        reservations::{self, Tag},
        reserve_many::{reserve_many, rows_of, Ask, Decided, Headroom},
    },
    limits::Hold,
};

/// How long an admission transaction may take before its callers are told
/// the database is unavailable (it stopped answering without closing the
/// connection). Had it committed after all, the writer takes its rows back
/// once the database answers (`Owed::unanswered`).
const ADMIT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Answers `requests`: from this instance's leases where they fit now,
/// the rest in one transaction that first closes those users' leases (a
/// call needed more than they had left) and may grant new ones. A caller
/// that is gone by then gets nothing, and its reservation is given back.
/// Returns what the books are owed when the database did not answer (what
/// closed leases did not use, and the rows of a batch whose answer was
/// lost), for the writer to give back later.
pub(super) async fn answer(
    conn: &mut WriterConnection,
    requests: Vec<ReserveRequest>,
    ledger: &LedgerWriter,
    tag: Tag<'_>,
) -> Owed {
    let leases = ledger.leases();
    let mut waiting = Vec::with_capacity(requests.len());
    for request in requests {
        match leases.try_admit(&request.ask) {
            Some(reservation) => {
                let hold = Some(Hold::Platform(reservation));
                let reserved = Reserved::new(ledger.clone(), hold, request.slot);
                let _ = request.reply.send(Answer::Admitted(reserved));
            }
            None => waiting.push(request),
        }
    }
    if waiting.is_empty() {
        return Owed::default();
    }
    let users: BTreeSet<i64> = waiting.iter().map(|r| r.ask.user_id).collect();
    let returning = leases.close_for(&users);
    if conn.is_down() {
        // Said once, when the outage began; callers hear it at once.
        for request in waiting {
            let _ = request.reply.send(Answer::Unavailable);
        }
        return Owed::leases(returning);
    }
    let mut asks: Vec<Ask> = waiting.iter().map(|r| r.ask.clone()).collect();
    let now_ms = asks.iter().map(|ask| ask.now_ms).max().unwrap_or(0);
    let headroom: HashMap<i64, Headroom> = users
        .iter()
        .map(|user_id| {
            let largest = asks
                .iter()
                .filter(|ask| ask.user_id == *user_id)
                .map(|ask| ask.tokens)
                .max()
                .unwrap_or(0);
            (*user_id, leases.headroom(*user_id, largest, now_ms))
        })
        .collect();
    // Twice at most: a batch that failed (a deadlock between instances on
    // Postgres, a connection that dropped) most likely changed nothing. But
    // it may have committed before its answer was lost: its rows are owed
    // back (a row it never wrote gives nothing back), and the second try
    // names rows of its own. A database that is down is not asked twice:
    // callers hear so at once.
    let mut unanswered = Vec::new();
    let mut decided = try_reserve(conn, &asks, &headroom, &returning, tag).await;
    if decided.is_err() && !conn.is_down() {
        unanswered = rows_of(&asks);
        asks.iter_mut()
            .for_each(|ask| ask.row = reservations::new_id());
        decided = try_reserve(conn, &asks, &headroom, &returning, tag).await;
    }
    let decided = match decided {
        Ok(decided) => decided,
        Err(err) => {
            tracing::error!(error = %err, calls = waiting.len(), "could not admit calls");
            for request in waiting {
                let _ = request.reply.send(Answer::Unavailable);
            }
            // The batch may have committed before its answer was lost.
            unanswered.extend(rows_of(&asks));
            return Owed {
                leases: returning,
                unanswered,
            };
        }
    };
    let mut admitted: HashMap<i64, i64> = HashMap::new();
    for (ask, answer) in asks.iter().zip(&decided.answers) {
        if answer.is_ok() {
            *admitted.entry(ask.user_id).or_default() += 1;
        }
    }
    leases.record(decided.grants, &admitted, now_ms);
    for (request, answer) in waiting.into_iter().zip(decided.answers) {
        let answer = match answer {
            Ok(reservation) => Answer::Admitted(Reserved::new(
                ledger.clone(),
                Some(Hold::Platform(reservation)),
                request.slot,
            )),
            Err(declined) => Answer::Declined(declined, request.slot),
        };
        // A caller that left drops the answer here, and with it the hold.
        let _ = request.reply.send(answer);
    }
    Owed {
        leases: Vec::new(),
        unanswered,
    }
}

/// Takes the next bucket's lease ahead for busy users whose lease nears
/// its end (`Leases::renewals_due`). Returns what leases taken but not
/// kept hold, for the writer to give back. A batch that fails changes
/// nothing: those users' calls ask the database as they would have.
pub(super) async fn take_ahead(
    conn: &mut WriterConnection,
    ledger: &LedgerWriter,
    now_ms: i64,
    tag: Tag<'_>,
) -> Owed {
    let leases = ledger.leases();
    let due = leases.renewals_due(now_ms);
    if due.is_empty() || conn.is_down() {
        return Owed::default();
    }
    let headroom: HashMap<i64, Headroom> = due
        .iter()
        .map(|(ask, headroom)| (ask.user_id, *headroom))
        .collect();
    let asks: Vec<Ask> = due.into_iter().map(|(ask, _)| ask).collect();
    match try_reserve(conn, &asks, &headroom, &[], tag).await {
        Ok(decided) => Owed::leases(leases.record_ahead(&asks, decided)),
        Err(err) => {
            // The batch may have committed before its answer was lost:
            // give back whatever of it the database holds.
            tracing::warn!(error = %err, users = asks.len(), "could not take leases ahead");
            Owed {
                leases: Vec::new(),
                unanswered: rows_of(&asks),
            }
        }
    }
}

async fn try_reserve(
    conn: &mut WriterConnection,
    asks: &[Ask],
    headroom: &HashMap<i64, Headroom>,
    returning: &[Unused],
    tag: Tag<'_>,
) -> Result<Decided, sqlx::Error> {
    let decided = match conn.get().await {
        Ok(open) => {
            within(
                ADMIT_TIMEOUT,
                reserve_many(open, asks, headroom, returning, tag),
            )
            .await
        }
        Err(err) => Err(err),
    };
    if let Err(err) = &decided {
        conn.failed(err);
    }
    decided
}
