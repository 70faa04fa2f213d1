//! Leases: a busy user's calls admitted in memory, without a database
//! round trip each.
//!
//! When the books writer admits a batch for a user who is making calls in
//! a burst, it takes a few calls' worth of the user's allowance more than the
//! batch asked for (a lease), counted in the database like any
//! reservation. The calls that follow take their share of it here, in
//! memory. A lease lasts until the end of the 100 ms bucket it is counted
//! in, so each of its calls is counted in the bucket it was made in and
//! the per-minute window stays as exact as without leases. Then, or when a
//! call needs more than it has left, the writer closes it and gives back
//! what no call took. Only a burst earns a lease (four calls within
//! 100 ms), sized at twice the burst: a person chatting never holds one,
//! so their use reads exactly as without leases.
//!
//! No limit can be overshot: an instance spends only allowance the
//! database counted for it, and a lease is taken only where twice its size
//! still fits, so the last of an allowance is decided call by call. An
//! instance that dies with a lease out leaves its row behind, released by
//! the sweep like any reservation.

use std::{
    collections::{BTreeSet, HashMap},
    sync::{
        atomic::{AtomicU64, Ordering},
        Mutex,
    },
};

use crate::server::db::{
    leases::Unused,
    rate_window,
    reserve_many::{Ask, Grant, Headroom},
    usage::Reservation,
};

/// The most calls one lease may hold beyond its batch.
const MAX_LEASE_CALLS: i64 = 1_024;
/// Demand is counted over windows this long (a lease's life at most).
const DEMAND_WINDOW_MS: i64 = rate_window::BUCKET_MS;
/// Calls a user must have made in the current or last window to get a
/// lease: a person chatting, or anything making fewer calls than this in
/// 100 ms, never takes one, so their use reads exactly as without leases.
const MIN_BURST: i64 = 4;

/// The leases this instance holds, one per busy user at most.
#[derive(Debug, Default)]
pub struct Leases {
    book: Mutex<Book>,
    /// Calls admitted against a lease so far.
    admitted: AtomicU64,
}

#[derive(Debug, Default)]
struct Book {
    open: HashMap<i64, Lease>,
    /// Each user's calls admitted in their latest demand window.
    demand: HashMap<i64, Demand>,
}

#[derive(Debug)]
struct Lease {
    grant: Grant,
    requests_left: i64,
    tokens_left: i64,
}

#[derive(Debug, Clone, Copy)]
struct Demand {
    calls: i64,
    /// When the window began.
    since_ms: i64,
}

impl Demand {
    /// Counts `calls` admitted at `now_ms`, in a new window if the last
    /// one has ended.
    fn add(&mut self, calls: i64, now_ms: i64) {
        if now_ms - self.since_ms >= DEMAND_WINDOW_MS {
            *self = Demand {
                calls: 0,
                since_ms: now_ms,
            };
        }
        self.calls += calls;
    }
}

impl Leases {
    /// Admits `ask` against its user's open lease if it fits, with no
    /// round trip: the call's share of the lease's row.
    pub fn try_admit(&self, ask: &Ask) -> Option<Reservation> {
        let mut book = self.book();
        let lease = book.open.get_mut(&ask.user_id)?;
        let grant = &lease.grant;
        let fits = ask.day == grant.day
            && ask.limits == grant.limits
            && (grant.from_ms..grant.open_until).contains(&ask.now_ms)
            && lease.requests_left >= 1
            && lease.tokens_left >= ask.tokens;
        if !fits {
            return None;
        }
        lease.requests_left -= 1;
        lease.tokens_left -= ask.tokens;
        self.admitted.fetch_add(1, Ordering::Relaxed);
        let reservation = Reservation {
            id: grant.id,
            user_id: ask.user_id,
            day: grant.day.clone(),
            tokens: ask.tokens,
            rate_bucket: grant.rate_bucket,
        };
        book.note_demand(ask.user_id, 1, ask.now_ms);
        Some(reservation)
    }

    /// Calls admitted against a lease so far.
    pub fn admitted(&self) -> u64 {
        self.admitted.load(Ordering::Relaxed)
    }

    /// The lease a batch may take for `user_id` beside its asks of at most
    /// `tokens_per_call` each: twice the calls the user made in their
    /// latest demand window, none unless that was a burst.
    pub fn headroom(&self, user_id: i64, tokens_per_call: i64, now_ms: i64) -> Headroom {
        let book = self.book();
        let calls = book
            .demand
            .get(&user_id)
            .filter(|demand| now_ms - demand.since_ms < 2 * DEMAND_WINDOW_MS)
            .map_or(0, |demand| demand.calls);
        if calls < MIN_BURST {
            return Headroom::default();
        }
        let requests = calls.saturating_mul(2).min(MAX_LEASE_CALLS);
        Headroom {
            requests,
            tokens: requests.saturating_mul(tokens_per_call.max(0)),
        }
    }

    /// Closes the leases of `users` (their calls need more than is left):
    /// what they did not hand out, for the batch to give back.
    pub fn close_for(&self, users: &BTreeSet<i64>) -> Vec<Unused> {
        let mut book = self.book();
        users
            .iter()
            .filter_map(|user_id| book.close(*user_id))
            .collect()
    }

    /// Closes the leases that have ended by `now_ms`.
    pub fn close_ended(&self, now_ms: i64) -> Vec<Unused> {
        let mut book = self.book();
        let ended: Vec<i64> = book
            .open
            .iter()
            .filter(|(_, lease)| lease.grant.open_until <= now_ms)
            .map(|(user_id, _)| *user_id)
            .collect();
        ended
            .into_iter()
            .filter_map(|user_id| book.close(user_id))
            .collect()
    }

    /// Closes every lease (shutdown).
    pub fn close_all(&self) -> Vec<Unused> {
        self.close_ended(i64::MAX)
    }

    /// When the first open lease ends, if any is open.
    pub fn next_end(&self) -> Option<i64> {
        let book = self.book();
        book.open.values().map(|lease| lease.grant.open_until).min()
    }

    /// Records a batch's decisions: the leases it granted, and how many
    /// calls it admitted per user (their demand).
    pub fn record(&self, grants: Vec<Grant>, admitted: &HashMap<i64, i64>, now_ms: i64) {
        let mut book = self.book();
        for (user_id, calls) in admitted {
            book.note_demand(*user_id, *calls, now_ms);
        }
        for grant in grants {
            let lease = Lease {
                requests_left: grant.headroom.requests,
                tokens_left: grant.headroom.tokens,
                grant,
            };
            book.open.insert(lease.grant.user_id, lease);
        }
        book.demand
            .retain(|_, demand| now_ms - demand.since_ms < 2 * DEMAND_WINDOW_MS);
    }

    fn book(&self) -> std::sync::MutexGuard<'_, Book> {
        // Plain counters: a panic elsewhere cannot leave them inconsistent.
        self.book
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Book {
    fn note_demand(&mut self, user_id: i64, calls: i64, now_ms: i64) {
        self.demand
            .entry(user_id)
            .or_insert(Demand {
                calls: 0,
                since_ms: now_ms,
            })
            .add(calls, now_ms);
    }

    fn close(&mut self, user_id: i64) -> Option<Unused> {
        let lease = self.open.remove(&user_id)?;
        Some(Unused {
            id: lease.grant.id,
            user_id,
            day: lease.grant.day,
            rate_bucket: lease.grant.rate_bucket,
            requests: lease.requests_left,
            tokens: lease.tokens_left,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::db::usage::Limits;

    const LIMITS: Limits = Limits {
        requests_per_minute: Some(100),
        requests_per_day: None,
        tokens_per_day: None,
    };

    fn ask(now_ms: i64, tokens: i64) -> Ask {
        Ask {
            user_id: 7,
            day: "2026-12-01".into(),
            now_ms,
            tokens,
            limits: LIMITS,
        }
    }

    fn grant(requests: i64, tokens: i64) -> Grant {
        Grant {
            id: 42,
            user_id: 7,
            day: "2026-12-01".into(),
            rate_bucket: 1_000,
            from_ms: 1_005,
            open_until: 1_100,
            headroom: Headroom { requests, tokens },
            limits: LIMITS,
        }
    }

    #[test]
    fn a_lease_admits_what_it_holds_within_its_bucket_and_returns_the_rest() {
        let leases = Leases::default();
        leases.record(vec![grant(2, 300)], &HashMap::from([(7, 3)]), 1_000);
        assert!(
            leases.try_admit(&ask(1_004, 1)).is_none(),
            "before the asks it was checked for"
        );
        let first = leases.try_admit(&ask(1_010, 100)).expect("fits the lease");
        assert_eq!(
            (first.id, first.rate_bucket, first.tokens),
            (42, 1_000, 100)
        );
        // Too big for what is left, then past the lease's end, then another plan.
        assert!(leases.try_admit(&ask(1_020, 201)).is_none());
        assert!(leases.try_admit(&ask(1_100, 1)).is_none());
        let mut other_plan = ask(1_020, 1);
        other_plan.limits.requests_per_minute = Some(5);
        assert!(leases.try_admit(&other_plan).is_none());
        assert!(leases.try_admit(&ask(1_099, 200)).is_some());
        assert!(leases.try_admit(&ask(1_099, 0)).is_none(), "no call left");
        assert_eq!(leases.admitted(), 2);
        assert_eq!(leases.next_end(), Some(1_100));
        assert!(leases.close_ended(1_099).is_empty());
        let returned = leases.close_ended(1_100);
        assert_eq!(
            returned,
            vec![Unused {
                id: 42,
                user_id: 7,
                day: "2026-12-01".into(),
                rate_bucket: 1_000,
                requests: 0,
                tokens: 0,
            }]
        );
        assert_eq!(leases.next_end(), None);
    }

    #[test]
    fn only_a_burst_earns_a_lease_twice_its_size() {
        let leases = Leases::default();
        // Fewer than four calls per 100 ms: no lease, however long it goes on.
        for at in (0..10).map(|i| 1_000 + i * 40) {
            leases.record(Vec::new(), &HashMap::from([(7, 1)]), at);
            assert_eq!(leases.headroom(7, 10, at + 1), Headroom::default());
        }
        let leases = Leases::default();
        leases.record(Vec::new(), &HashMap::from([(7, 5)]), 1_000);
        assert_eq!(
            leases.headroom(7, 10, 1_050),
            Headroom {
                requests: 10,
                tokens: 100
            }
        );
        assert_eq!(
            leases.headroom(7, 10, 1_250),
            Headroom::default(),
            "forgotten after a quiet spell"
        );
        assert_eq!(
            leases.headroom(8, 10, 1_050),
            Headroom::default(),
            "never busy"
        );
    }

    #[test]
    fn closing_for_a_user_returns_what_no_call_took() {
        let leases = Leases::default();
        leases.record(vec![grant(5, 500)], &HashMap::from([(7, 1)]), 1_000);
        leases.try_admit(&ask(1_006, 50)).expect("fits");
        let returned = leases.close_for(&BTreeSet::from([7, 8]));
        assert_eq!(returned.len(), 1);
        assert_eq!((returned[0].requests, returned[0].tokens), (4, 450));
        assert!(leases.try_admit(&ask(1_008, 1)).is_none(), "closed");
    }
}
