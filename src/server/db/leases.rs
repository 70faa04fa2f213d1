//! Giving back what leases did not use. A lease is a platform reservation
//! row counting more calls than its batch asked for (see
//! `accounting::leases`); when it closes, the calls and tokens no call
//! took leave the user's day, their per-minute bucket and the row.

use std::collections::BTreeMap;

use super::{
    reservations::{self, Share},
    usage::UsageChanges,
};

/// What a closing lease did not hand out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unused {
    /// Its reservation row.
    pub id: i64,
    pub user_id: i64,
    pub day: String,
    pub rate_bucket: i64,
    pub requests: i64,
    pub tokens: i64,
}

/// Takes `unused` out of the leases' rows and gives it back, inside the
/// caller's transaction (which on Postgres has locked the users first). A
/// row a sweep already released gives nothing back twice.
pub async fn return_unused(
    conn: &mut sqlx::AnyConnection,
    unused: &[Unused],
) -> Result<(), sqlx::Error> {
    if unused.is_empty() {
        return Ok(());
    }
    let shares: BTreeMap<i64, Share> = unused
        .iter()
        .map(|lease| {
            let share = Share {
                requests: lease.requests,
                tokens: lease.tokens,
                closes: true,
            };
            (lease.id, share)
        })
        .collect();
    let (taken, emptied) = reservations::consume_many(conn, &shares).await?;
    let mut changes = UsageChanges::default();
    for lease in unused.iter().filter(|lease| taken.contains(&lease.id)) {
        changes.give_back(
            lease.user_id,
            &lease.day,
            lease.requests,
            lease.tokens,
            Some(lease.rate_bucket),
        );
    }
    for row in emptied {
        changes.give_back_tokens(row.user_id, &row.day, row.tokens);
    }
    changes.apply(conn).await
}

/// A reservation row a batch may have written though its answer was lost
/// (the connection dropped, or the batch outlived its timeout, as it
/// committed): no call was told of it, so whatever it holds goes back whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unanswered {
    pub id: i64,
    pub user_id: i64,
}

/// What an instance owes the books and could not give back yet because the
/// database did not answer: given back, once it does, in one transaction.
#[derive(Debug, Default)]
pub struct Owed {
    /// What closed leases did not hand out.
    pub leases: Vec<Unused>,
    pub unanswered: Vec<Unanswered>,
}

impl Owed {
    pub fn leases(leases: Vec<Unused>) -> Self {
        Self {
            leases,
            unanswered: Vec::new(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.leases.is_empty() && self.unanswered.is_empty()
    }

    pub fn add(&mut self, more: Owed) {
        self.leases.extend(more.leases);
        self.unanswered.extend(more.unanswered);
    }

    pub fn count(&self) -> usize {
        self.leases.len() + self.unanswered.len()
    }
}

/// Gives back what is `owed` in a transaction of its own (leases that
/// ended with no call asking for more, and what the database did not take
/// while it was down). Each part applies once, so a transaction whose
/// answer was lost may be done again.
pub async fn give_back_now(conn: &mut sqlx::AnyConnection, owed: &Owed) -> Result<(), sqlx::Error> {
    let mut tx = sqlx::Connection::begin(conn).await?;
    if tx.backend_name() != "SQLite" {
        let users = owed
            .leases
            .iter()
            .map(|lease| lease.user_id)
            .chain(owed.unanswered.iter().map(|row| row.user_id));
        super::book_locks::lock_users_in_order(&mut tx, users).await?;
    }
    return_unused(&mut tx, &owed.leases).await?;
    let rows: Vec<i64> = owed.unanswered.iter().map(|row| row.id).collect();
    super::give_back::remove_and_give_back(&mut tx, &rows).await?;
    tx.commit().await
}
