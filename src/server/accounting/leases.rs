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
//! A user still busy as their lease nears its end gets the next bucket's
//! ahead of time (`take_ahead`, `RENEW_AHEAD_MS` before the edge): without
//! it every busy user's lease ends at the same edge, and all their next
//! calls wait on one batch. A lease taken ahead is counted in the bucket
//! its calls will be made in, checked against that bucket's window, so the
//! window stays exact; a window read for a call now counts it too (reads
//! count every bucket from the window's start on), so a lease ahead can
//! only make a call now be refused, never admitted past a limit.
//!
//! No limit can be overshot: an instance spends only allowance the
//! database counted for it, and a lease is taken only where twice its size
//! still fits, so the last of an allowance is decided call by call. An
//! instance that dies with a lease out leaves its row behind, released by
//! the sweep like any reservation.

use std::{
    collections::{hash_map::Entry, BTreeSet, HashMap},
    sync::{
        atomic::{AtomicU64, Ordering},
        Mutex,
    },
};

use crate::server::{
    clock::utc_day,
    db::{
        leases::Unused,
        rate_window,
        reserve_many::{Ask, Decided, Grant, Headroom},
        usage::Reservation,
    },
};

/// The most calls one lease may hold beyond its batch.
const MAX_LEASE_CALLS: i64 = 1_024;
/// Demand is counted over windows this long (a lease's life at most).
const DEMAND_WINDOW_MS: i64 = rate_window::BUCKET_MS;
/// Calls a user must have made in the current or last window to get a
/// lease: a person chatting, or anything making fewer calls than this in
/// 100 ms, never takes one, so their use reads exactly as without leases.
const MIN_BURST: i64 = 4;
/// How long before a busy user's lease ends the next bucket's is taken:
/// time for its batch to commit before the edge.
pub const RENEW_AHEAD_MS: i64 = 20;

/// The leases this instance holds, one per busy user at most.
#[derive(Debug, Default)]
pub struct Leases {
    book: Mutex<Book>,
    /// Calls admitted against a lease so far.
    admitted: AtomicU64,
    /// Leases taken ahead (and kept) so far.
    taken_ahead: AtomicU64,
}

#[derive(Debug, Default)]
struct Book {
    open: HashMap<i64, Lease>,
    /// Leases taken ahead for the bucket after the open one's.
    ahead: HashMap<i64, Lease>,
    /// Each user's calls admitted in their latest demand window.
    demand: HashMap<i64, Demand>,
}

#[derive(Debug)]
struct Lease {
    grant: Grant,
    requests_left: i64,
    tokens_left: i64,
    /// The worst case per call it was sized for (a lease ahead asks as much).
    tokens_per_call: i64,
    /// Whether the next bucket's lease was asked for already.
    renewal_asked: bool,
}

impl Lease {
    fn new(grant: Grant, requests: i64, tokens: i64, tokens_per_call: i64) -> Self {
        Lease {
            grant,
            requests_left: requests,
            tokens_left: tokens,
            tokens_per_call,
            renewal_asked: false,
        }
    }

    fn fits(&self, ask: &Ask) -> bool {
        let grant = &self.grant;
        ask.day == grant.day
            && ask.limits == grant.limits
            && (grant.from_ms..grant.open_until).contains(&ask.now_ms)
            && self.requests_left >= 1
            && self.tokens_left >= ask.tokens
    }

    fn unused(self) -> Unused {
        Unused {
            id: self.grant.id,
            user_id: self.grant.user_id,
            day: self.grant.day,
            rate_bucket: self.grant.rate_bucket,
            requests: self.requests_left,
            tokens: self.tokens_left,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Demand {
    calls: i64,
    /// When the window began.
    since_ms: i64,
    /// The calls of the window just before, if it ended when this began:
    /// a window just begun still sizes a lease by the one before.
    previous: i64,
}

impl Demand {
    fn new(now_ms: i64) -> Self {
        Demand {
            calls: 0,
            since_ms: now_ms,
            previous: 0,
        }
    }

    /// Counts `calls` admitted at `now_ms`, in a new window if the last
    /// one has ended.
    fn add(&mut self, calls: i64, now_ms: i64) {
        if now_ms - self.since_ms >= DEMAND_WINDOW_MS {
            let adjacent = now_ms - self.since_ms < 2 * DEMAND_WINDOW_MS;
            *self = Demand {
                previous: if adjacent { self.calls } else { 0 },
                ..Demand::new(now_ms)
            };
        }
        self.calls += calls;
    }

    /// The busier of this window and the one before it.
    fn rate(&self) -> i64 {
        self.calls.max(self.previous)
    }
}

impl Leases {
    /// Admits `ask` against its user's open lease if it fits, with no
    /// round trip: the call's share of the lease's row.
    pub fn try_admit(&self, ask: &Ask) -> Option<Reservation> {
        let mut book = self.book();
        let Book { open, ahead, .. } = &mut *book;
        let lease = [open.get_mut(&ask.user_id), ahead.get_mut(&ask.user_id)]
            .into_iter()
            .flatten()
            .find(|lease| lease.fits(ask))?;
        lease.requests_left -= 1;
        lease.tokens_left -= ask.tokens;
        self.admitted.fetch_add(1, Ordering::Relaxed);
        let reservation = Reservation {
            id: lease.grant.id,
            user_id: ask.user_id,
            day: lease.grant.day.clone(),
            tokens: ask.tokens,
            rate_bucket: lease.grant.rate_bucket,
        };
        book.note_demand(ask.user_id, 1, ask.now_ms);
        Some(reservation)
    }

    /// Calls admitted against a lease so far.
    pub fn admitted(&self) -> u64 {
        self.admitted.load(Ordering::Relaxed)
    }

    /// Leases taken ahead of a bucket's edge so far.
    pub fn taken_ahead(&self) -> u64 {
        self.taken_ahead.load(Ordering::Relaxed)
    }

    /// The lease a batch may take for `user_id` beside its asks of at most
    /// `tokens_per_call` each: twice the calls the user made in their
    /// latest demand window, none unless that was a burst.
    pub fn headroom(&self, user_id: i64, tokens_per_call: i64, now_ms: i64) -> Headroom {
        headroom_for(&self.book().demand, user_id, tokens_per_call, now_ms)
    }

    /// Closes the leases of `users` (their calls need more than is left):
    /// what they did not hand out, for the batch to give back.
    pub fn close_for(&self, users: &BTreeSet<i64>) -> Vec<Unused> {
        let mut book = self.book();
        let mut closed = Vec::new();
        for user_id in users {
            closed.extend(book.open.remove(user_id).map(Lease::unused));
            closed.extend(book.ahead.remove(user_id).map(Lease::unused));
        }
        closed
    }

    /// Closes the leases that have ended by `now_ms`; a lease taken ahead
    /// becomes its user's open one.
    pub fn close_ended(&self, now_ms: i64) -> Vec<Unused> {
        let mut book = self.book();
        let Book { open, ahead, .. } = &mut *book;
        let mut closed = Vec::new();
        for leases in [&mut *open, &mut *ahead] {
            let ended: Vec<i64> = leases
                .iter()
                .filter(|(_, lease)| lease.grant.open_until <= now_ms)
                .map(|(user_id, _)| *user_id)
                .collect();
            for user_id in ended {
                closed.extend(leases.remove(&user_id).map(Lease::unused));
            }
        }
        let promoted: Vec<i64> = ahead
            .keys()
            .filter(|user_id| !open.contains_key(user_id))
            .copied()
            .collect();
        for user_id in promoted {
            if let Some(lease) = ahead.remove(&user_id) {
                open.insert(user_id, lease);
            }
        }
        closed
    }

    /// Closes every lease (shutdown).
    pub fn close_all(&self) -> Vec<Unused> {
        self.close_ended(i64::MAX)
    }

    /// When the first open lease ends, if any is open.
    pub fn next_end(&self) -> Option<i64> {
        let book = self.book();
        book.open
            .values()
            .chain(book.ahead.values())
            .map(|lease| lease.grant.open_until)
            .min()
    }

    /// When the first open lease comes within `RENEW_AHEAD_MS` of its end
    /// without the next bucket's having been asked for.
    pub fn next_renewal(&self) -> Option<i64> {
        let book = self.book();
        book.open
            .values()
            .filter(|lease| !lease.renewal_asked)
            .map(|lease| lease.grant.open_until - RENEW_AHEAD_MS)
            .min()
    }

    /// The leases to take ahead at `now_ms`, each with the headroom its
    /// user's demand earns: one per user whose open lease ends within
    /// `RENEW_AHEAD_MS` and who is still making calls in a burst. Each
    /// lease is renewed once at most, and only within its day.
    pub fn renewals_due(&self, now_ms: i64) -> Vec<(Ask, Headroom)> {
        let mut book = self.book();
        let Book {
            open,
            ahead,
            demand,
        } = &mut *book;
        let mut due = Vec::new();
        for (user_id, lease) in open.iter_mut() {
            let grant = &lease.grant;
            if lease.renewal_asked || grant.open_until - RENEW_AHEAD_MS > now_ms {
                continue;
            }
            lease.renewal_asked = true;
            let next_bucket = grant.open_until;
            let headroom = headroom_for(demand, *user_id, lease.tokens_per_call, now_ms);
            if headroom == Headroom::default()
                || ahead.contains_key(user_id)
                || utc_day(next_bucket) != grant.day
            {
                continue;
            }
            let ask = Ask {
                ahead: true,
                ..Ask::new(
                    *user_id,
                    grant.day.clone(),
                    next_bucket,
                    lease.tokens_per_call,
                    grant.limits,
                )
            };
            due.push((ask, headroom));
        }
        due
    }

    /// Records the leases a batch took ahead for `asks` (`renewals_due`'s);
    /// returns what it took but this book cannot keep, to give back.
    pub fn record_ahead(&self, asks: &[Ask], decided: Decided) -> Vec<Unused> {
        let mut book = self.book();
        let mut grants: HashMap<i64, Grant> = decided
            .grants
            .into_iter()
            .map(|grant| (grant.id, grant))
            .collect();
        let mut returned = Vec::new();
        for (ask, answer) in asks.iter().zip(decided.answers) {
            let Some(grant) = answer.ok().and_then(|reserved| grants.remove(&reserved.id)) else {
                continue;
            };
            // The ask's own call is the lease's too.
            let requests = grant.headroom.requests + 1;
            let tokens = grant.headroom.tokens.saturating_add(ask.tokens);
            let lease = Lease::new(grant, requests, tokens, ask.tokens);
            match book.ahead.entry(ask.user_id) {
                Entry::Occupied(_) => returned.push(lease.unused()),
                Entry::Vacant(slot) => {
                    slot.insert(lease);
                    self.taken_ahead.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        returned
    }

    /// Records a batch's decisions: the leases it granted, and how many
    /// calls it admitted per user (their demand).
    pub fn record(&self, grants: Vec<Grant>, admitted: &HashMap<i64, i64>, now_ms: i64) {
        let mut book = self.book();
        for (user_id, calls) in admitted {
            book.note_demand(*user_id, *calls, now_ms);
        }
        for grant in grants {
            let Headroom { requests, tokens } = grant.headroom;
            let per_call = tokens / requests.max(1);
            let lease = Lease::new(grant, requests, tokens, per_call);
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
            .or_insert(Demand::new(now_ms))
            .add(calls, now_ms);
    }
}

/// The lease `user_id`'s demand earns beside calls of at most
/// `tokens_per_call`: twice the calls of the busier of their window under
/// way and the one just before it (so a steady user's lease does not
/// shrink at each window's start and run dry mid-bucket), none unless that
/// was a burst.
fn headroom_for(
    demand: &HashMap<i64, Demand>,
    user_id: i64,
    tokens_per_call: i64,
    now_ms: i64,
) -> Headroom {
    let calls = demand
        .get(&user_id)
        .filter(|demand| now_ms - demand.since_ms < 2 * DEMAND_WINDOW_MS)
        .map_or(0, Demand::rate);
    if calls < MIN_BURST {
        return Headroom::default();
    }
    let requests = calls.saturating_mul(2).min(MAX_LEASE_CALLS);
    Headroom {
        requests,
        tokens: requests.saturating_mul(tokens_per_call.max(0)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::db::usage::Limits;

    /// The day of the tests' times (milliseconds after the epoch).
    const DAY: &str = "1970-01-01";

    const LIMITS: Limits = Limits {
        requests_per_minute: Some(100),
        requests_per_day: None,
        tokens_per_day: None,
    };

    fn ask(now_ms: i64, tokens: i64) -> Ask {
        Ask::new(7, DAY.into(), now_ms, tokens, LIMITS)
    }

    fn grant(requests: i64, tokens: i64) -> Grant {
        Grant {
            id: 42,
            user_id: 7,
            day: DAY.into(),
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
                day: DAY.into(),
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
        // A steady user: a window only begun is sized by the one before.
        leases.record(Vec::new(), &HashMap::from([(7, 30)]), 2_000);
        leases.record(Vec::new(), &HashMap::from([(7, 2)]), 2_100);
        assert_eq!(leases.headroom(7, 10, 2_101).requests, 60);
        // After a gap, the window before does not count.
        leases.record(Vec::new(), &HashMap::from([(7, 2)]), 2_400);
        assert_eq!(leases.headroom(7, 10, 2_401), Headroom::default());
        assert_eq!(
            leases.headroom(8, 10, 1_050),
            Headroom::default(),
            "never busy"
        );
    }

    #[test]
    fn a_busy_user_gets_the_next_buckets_lease_ahead_of_the_edge() {
        let leases = Leases::default();
        // Busy: five calls in this window; the open lease ends at 1_100.
        leases.record(vec![grant(4, 400)], &HashMap::from([(7, 5)]), 1_005);
        assert_eq!(leases.next_renewal(), Some(1_100 - RENEW_AHEAD_MS));
        assert!(leases.renewals_due(1_079).is_empty(), "not yet");
        let due = leases.renewals_due(1_080);
        assert_eq!(due.len(), 1);
        let (ahead, headroom) = &due[0];
        assert!(ahead.ahead);
        let row = ahead.row;
        assert_eq!(
            (ahead.now_ms, ahead.tokens),
            (1_100, 100),
            "the next bucket, per call"
        );
        assert_eq!(
            *headroom,
            Headroom {
                requests: 10,
                tokens: 1_000
            }
        );
        assert!(leases.renewals_due(1_081).is_empty(), "asked once");
        assert_eq!(leases.next_renewal(), None);

        // The batch granted it: its own call and the headroom, from 1_100.
        let next = Grant {
            id: row,
            rate_bucket: 1_100,
            from_ms: 1_100,
            open_until: 1_200,
            headroom: *headroom,
            ..grant(0, 0)
        };
        let reserved = Reservation {
            id: row,
            user_id: 7,
            day: DAY.into(),
            tokens: 100,
            rate_bucket: 1_100,
        };
        let decided = Decided {
            answers: vec![Ok(reserved)],
            grants: vec![next],
        };
        assert!(leases
            .record_ahead(std::slice::from_ref(ahead), decided)
            .is_empty());
        assert_eq!(
            leases.try_admit(&ask(1_090, 100)).unwrap().id,
            42,
            "the open one first"
        );
        assert_eq!(
            leases.try_admit(&ask(1_100, 100)).unwrap().id,
            row,
            "then the next"
        );
        // The edge: the open lease closes, the one ahead takes its place.
        let closed = leases.close_ended(1_100);
        assert_eq!(
            closed
                .iter()
                .map(|u| (u.id, u.requests))
                .collect::<Vec<_>>(),
            vec![(42, 3)]
        );
        assert_eq!(leases.next_end(), Some(1_200));
        assert_eq!(leases.next_renewal(), Some(1_200 - RENEW_AHEAD_MS));
        let left = leases.close_all();
        assert_eq!(
            (left[0].id, left[0].requests, left[0].tokens),
            (row, 10, 1_000)
        );
    }

    #[test]
    fn no_lease_is_taken_ahead_for_a_quiet_user_nor_kept_when_declined() {
        let leases = Leases::default();
        leases.record(vec![grant(4, 400)], &HashMap::from([(7, 1)]), 1_005);
        assert!(leases.renewals_due(1_090).is_empty(), "one call: not busy");

        let leases = Leases::default();
        leases.record(vec![grant(4, 400)], &HashMap::from([(7, 5)]), 1_005);
        let (ahead, _) = leases.renewals_due(1_090).remove(0);
        // Declined (near a limit): nothing is kept, nothing to give back.
        let declined = Decided {
            answers: vec![Err(crate::server::db::reserve_many::Declined {
                refusal: crate::server::db::usage::Refusal::RequestsPerDay { limit: 10 },
                others_open_until: None,
            })],
            grants: Vec::new(),
        };
        assert!(leases
            .record_ahead(std::slice::from_ref(&ahead), declined)
            .is_empty());
        assert!(leases.try_admit(&ask(1_100, 1)).is_none());
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
