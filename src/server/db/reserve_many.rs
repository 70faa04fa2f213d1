//! Reservations against the plan's limits, decided in batches: every call
//! waiting to be admitted is answered by one transaction, so the database
//! cost of admission is shared by the calls that arrive together instead
//! of paid by each.
//!
//! The transaction first makes sure each user's row for the day exists (a
//! write, so SQLite holds its write lock from the start) and, on Postgres,
//! locks the batch's users in ascending order (their `users` rows: the
//! per-minute window spans days, so the day's row would not do). Then it
//! sums every user's per-minute window in one statement and, in the common
//! case, adds each user's asks with one `UPDATE … FROM` for the whole batch
//! that holds for a user only if every one of their asks fits. A user near
//! a limit is decided ask by ask in memory instead. The locks (Postgres) or
//! the write lock (SQLite) serialise the decisions of every instance, so
//! limits hold under any concurrency.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::{
    book_locks::lock_users_in_order,
    leases::{self, Unanswered, Unused},
    rate_window::{self, Window},
    reservations::{self, Kind, Tag},
    usage::{Limits, Refusal, Reservation},
};

/// One platform call asking to be admitted.
#[derive(Debug, Clone)]
pub struct Ask {
    pub user_id: i64,
    pub day: String,
    pub now_ms: i64,
    /// Its worst case: estimated input and the `max_tokens` going upstream.
    pub tokens: i64,
    pub limits: Limits,
    /// The id its reservation row is to have, chosen before the batch so
    /// that a batch whose answer was lost can be undone (`rows_of`). The
    /// asks of one user in one bucket share the first one's row.
    pub row: i64,
    /// Not a call but a lease taken ahead, for the calls its user will make
    /// in `now_ms`'s bucket (which has not begun). It is taken whole, with
    /// its headroom, or not at all: near a limit each call is decided
    /// alone, when made.
    pub ahead: bool,
}

impl Ask {
    /// A call's ask (not a lease ahead), with a row id of its own.
    pub fn new(user_id: i64, day: String, now_ms: i64, tokens: i64, limits: Limits) -> Self {
        Self {
            user_id,
            day,
            now_ms,
            tokens,
            limits,
            row: reservations::new_id(),
            ahead: false,
        }
    }
}

/// The rows a batch of `asks` may have written: for a batch whose answer
/// was lost, to take back whole (no caller heard of them).
pub fn rows_of(asks: &[Ask]) -> Vec<Unanswered> {
    asks.iter()
        .map(|ask| Unanswered {
            id: ask.row,
            user_id: ask.user_id,
        })
        .collect()
}

/// Allowance a batch may take for a user beyond what their asks need: a
/// lease, for the calls that follow. Taken only where twice as much fits,
/// so a user near a limit is decided call by call.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Headroom {
    pub requests: i64,
    pub tokens: i64,
}

/// A lease granted by a batch: allowance counted in the database that the
/// instance may hand to calls without asking again, until `open_until`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// The reservation row that counts it.
    pub id: i64,
    pub user_id: i64,
    pub day: String,
    pub rate_bucket: i64,
    /// The lease admits calls made from `from_ms` (no earlier than the
    /// asks its window was checked for) until `open_until`.
    pub from_ms: i64,
    pub open_until: i64,
    pub headroom: Headroom,
    /// The limits it was checked against (a plan changed since asks again).
    pub limits: Limits,
}

/// Why an ask was not admitted: the limit, and whether another instance
/// holds an open lease on the same allowance (then asking again after
/// `others_open_until` may succeed: that lease's unused part comes back).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Declined {
    pub refusal: Refusal,
    pub others_open_until: Option<i64>,
}

/// A batch's decisions: an answer per ask, in order, and the leases taken.
#[derive(Debug, Default)]
pub struct Decided {
    pub answers: Vec<Result<Reservation, Declined>>,
    pub grants: Vec<Grant>,
}

/// How long after its end another instance's lease still counts as open:
/// its instance returns what it did not use within this.
pub const LEASE_RETURN_GRACE_MS: i64 = 1_000;

/// Decides `asks` in one transaction on `conn`, after giving back what the
/// leases in `returning` did not use; answers in the same order. Users in
/// `headroom` may get a lease beyond their asks. On an error nothing
/// changes.
pub async fn reserve_many(
    conn: &mut sqlx::AnyConnection,
    asks: &[Ask],
    headroom: &HashMap<i64, Headroom>,
    returning: &[Unused],
    tag: Tag<'_>,
) -> Result<Decided, sqlx::Error> {
    let mut by_user: BTreeMap<(i64, &str), Vec<usize>> = BTreeMap::new();
    for (i, ask) in asks.iter().enumerate() {
        by_user.entry((ask.user_id, &ask.day)).or_default().push(i);
    }
    let mut tx = sqlx::Connection::begin(conn).await?;
    // A write first: SQLite then holds its write lock before anything is read.
    let days: Vec<(i64, &str)> = by_user.keys().copied().collect();
    insert_days(&mut tx, &days).await?;
    if tx.backend_name() != "SQLite" {
        let users = days
            .iter()
            .map(|(user_id, _)| *user_id)
            .chain(returning.iter().map(|unused| unused.user_id));
        lock_users_in_order(&mut tx, users).await?;
    }
    leases::return_unused(&mut tx, returning).await?;
    let mut windows = read_windows(&mut tx, asks).await?;
    let fits = add_where_all_fit(&mut tx, &by_user, asks, &windows, headroom).await?;
    let mut answers: Vec<Option<Result<Reservation, Declined>>> = vec![None; asks.len()];
    let mut rows: Vec<(i64, reservations::Row)> = Vec::new();
    let mut grants = Vec::new();
    let mut buckets: BTreeMap<(i64, i64), i64> = BTreeMap::new();
    let mut refused_users = BTreeSet::new();
    for ((user_id, day), indices) in &by_user {
        let group: Vec<&Ask> = indices.iter().map(|&i| &asks[i]).collect();
        // Admitted calls join their user's window, across the user's days.
        let window = windows.entry(*user_id).or_default();
        let granted = fits.get(&(*user_id, (*day).to_owned())).copied();
        if group.iter().any(|ask| ask.ahead) && granted.is_none() {
            for &i in indices {
                answers[i] = Some(Err(not_taken_ahead(&asks[i])));
            }
            continue;
        }
        let decided = if granted.is_some() {
            group.iter().for_each(|ask| window.add(ask.now_ms));
            vec![Ok(()); group.len()]
        } else {
            one_by_one(&mut tx, *user_id, day, &group, window).await?
        };
        // One row per bucket the user's admitted asks fall in: a row
        // gives its calls back to one bucket.
        let mut per_bucket: BTreeMap<i64, (i64, i64, i64)> = BTreeMap::new();
        let mut ahead_buckets = BTreeSet::new();
        for ((&i, ask), decision) in indices.iter().zip(&group).zip(decided) {
            if let Err(refusal) = decision {
                answers[i] = Some(Err(Declined {
                    refusal,
                    others_open_until: None,
                }));
                refused_users.insert(*user_id);
                continue;
            }
            let rate_bucket = rate_window::bucket_of(ask.now_ms);
            if ask.ahead {
                ahead_buckets.insert(rate_bucket);
            }
            let (id, requests, tokens) = per_bucket.entry(rate_bucket).or_insert((ask.row, 0, 0));
            *requests += 1;
            *tokens = tokens.saturating_add(ask.tokens);
            answers[i] = Some(Ok(Reservation {
                id: *id,
                user_id: *user_id,
                day: (*day).to_owned(),
                tokens: ask.tokens,
                rate_bucket,
            }));
        }
        let lease = granted
            .filter(|headroom| headroom.requests > 0)
            .zip(per_bucket.last_key_value().map(|(bucket, _)| *bucket));
        for (rate_bucket, (id, mut requests, mut tokens)) in per_bucket {
            let mut open_until = None;
            let leased = lease
                .filter(|(_, latest)| *latest == rate_bucket)
                .map(|(headroom, _)| headroom)
                .or_else(|| {
                    ahead_buckets
                        .contains(&rate_bucket)
                        .then_some(Headroom::default())
                });
            if let Some(headroom) = leased {
                requests += headroom.requests;
                tokens = tokens.saturating_add(headroom.tokens);
                window.add_calls(rate_bucket, headroom.requests);
                // Its calls count in the bucket they are made in.
                let until = rate_bucket + rate_window::BUCKET_MS;
                let earliest = group
                    .iter()
                    .map(|ask| ask.now_ms)
                    .min()
                    .unwrap_or(rate_bucket);
                open_until = Some(until);
                grants.push(Grant {
                    id,
                    user_id: *user_id,
                    day: (*day).to_owned(),
                    rate_bucket,
                    from_ms: earliest.max(rate_bucket),
                    open_until: until,
                    headroom,
                    limits: group[0].limits,
                });
            }
            *buckets.entry((*user_id, rate_bucket)).or_default() += requests;
            rows.push((
                id,
                reservations::Row {
                    kind: Kind::Platform,
                    user_id: *user_id,
                    day,
                    requests,
                    tokens,
                    cost_micro_usd: 0,
                    rate_bucket: Some(rate_bucket),
                    open_until,
                },
            ));
        }
    }
    // A refusal while another instance holds an open lease on the same
    // allowance may only be for now: say until when.
    for user_id in refused_users {
        let now_ms = asks.iter().map(|ask| ask.now_ms).max().unwrap_or(0);
        let others = reservations::others_open_until(
            &mut tx,
            user_id,
            tag.instance,
            now_ms,
            LEASE_RETURN_GRACE_MS,
        )
        .await?;
        for (answer, ask) in answers.iter_mut().zip(asks) {
            if let Some(Err(declined)) = answer.as_mut().filter(|_| ask.user_id == user_id) {
                declined.others_open_until = others;
            }
        }
    }
    let counts: Vec<(i64, i64, i64)> = buckets
        .into_iter()
        .map(|((user_id, bucket), calls)| (user_id, bucket, calls))
        .collect();
    rate_window::add_many(&mut tx, &counts).await?;
    let (ids, rows): (Vec<i64>, Vec<reservations::Row>) = rows.into_iter().unzip();
    reservations::insert_many(&mut tx, &ids, &rows, tag).await?;
    tx.commit().await?;
    Ok(Decided {
        answers: answers
            .into_iter()
            .map(|answer| answer.expect("every ask is answered"))
            .collect(),
        grants,
    })
}

/// The answer to a lease ahead that does not come whole: nothing taken.
/// No caller hears it (`take_ahead` keeps only what was taken); the limit
/// named is the day's, the one a lease ahead cannot outlast.
fn not_taken_ahead(ask: &Ask) -> Declined {
    Declined {
        refusal: Refusal::RequestsPerDay {
            limit: ask.limits.requests_per_day.unwrap_or(0),
        },
        others_open_until: None,
    }
}

/// Makes sure each (user, day) has its row, a statement for many.
async fn insert_days(
    conn: &mut sqlx::AnyConnection,
    days: &[(i64, &str)],
) -> Result<(), sqlx::Error> {
    for chunk in days.chunks(200) {
        let values: Vec<String> = (0..chunk.len())
            .map(|i| format!("(${}, ${}, 0, 0)", 2 * i + 1, 2 * i + 2))
            .collect();
        let sql = format!(
            "INSERT INTO usage_daily (user_id, day, requests, tokens) VALUES {} \
             ON CONFLICT (user_id, day) DO NOTHING",
            values.join(", ")
        );
        let mut query = sqlx::query(&sql);
        for (user_id, day) in chunk {
            query = query.bind(*user_id).bind(*day);
        }
        query.execute(&mut *conn).await?;
    }
    Ok(())
}

/// The per-minute windows of the users whose asks carry a per-minute
/// limit, in one statement; counted from the batch's earliest ask (a later
/// ask of the batch may see a call that just left its window: erring that
/// way only refuses, never admits).
async fn read_windows(
    conn: &mut sqlx::AnyConnection,
    asks: &[Ask],
) -> Result<HashMap<i64, Window>, sqlx::Error> {
    let users: BTreeSet<i64> = asks
        .iter()
        .filter(|ask| ask.limits.requests_per_minute.is_some())
        .map(|ask| ask.user_id)
        .collect();
    let earliest = asks.iter().map(|ask| ask.now_ms).min().unwrap_or(0);
    let mut windows = HashMap::new();
    let users: Vec<i64> = users.into_iter().collect();
    for chunk in users.chunks(500) {
        windows.extend(Window::read_many(conn, chunk, earliest).await?);
    }
    Ok(windows)
}

/// The common case in one statement: each user's asks are added together
/// where every one of them fits, even under the strictest limits any of
/// them carries. The users (and days) that fit, with the headroom each
/// took: a user's headroom is taken only where twice as much would fit
/// too, so the last of an allowance is always decided call by call.
async fn add_where_all_fit(
    conn: &mut sqlx::AnyConnection,
    by_user: &BTreeMap<(i64, &str), Vec<usize>>,
    asks: &[Ask],
    windows: &HashMap<i64, Window>,
    headroom: &HashMap<i64, Headroom>,
) -> Result<HashMap<(i64, String), Headroom>, sqlx::Error> {
    // A user with asks on two days (a batch across midnight) is decided
    // ask by ask: their window is one, their day rows two.
    let mut groups_per_user: HashMap<i64, usize> = HashMap::new();
    for (user_id, _) in by_user.keys() {
        *groups_per_user.entry(*user_id).or_default() += 1;
    }
    let mut candidates = Vec::new();
    for ((user_id, day), indices) in by_user {
        if groups_per_user[user_id] > 1 {
            continue;
        }
        let group: Vec<&Ask> = indices.iter().map(|&i| &asks[i]).collect();
        let calls = group.len() as i64;
        let strictest = |limit: fn(&Limits) -> Option<i64>| {
            group.iter().filter_map(|ask| limit(&ask.limits)).min()
        };
        let mut spare = headroom.get(user_id).copied().unwrap_or_default();
        let ahead = group.iter().any(|ask| ask.ahead);
        let latest = group.iter().map(|ask| ask.now_ms).max().unwrap_or(0);
        let in_window = windows.get(user_id).map_or(0, |w| w.count_at(latest).0);
        if let Some(limit) = strictest(|l| l.requests_per_minute) {
            if in_window + calls > limit {
                continue;
            }
            if in_window + calls + 2 * spare.requests > limit {
                spare = Headroom::default();
            }
        }
        if ahead && spare.requests == 0 {
            // A lease ahead comes with its headroom or not at all.
            continue;
        }
        let tokens = group
            .iter()
            .fold(0i64, |sum, ask| sum.saturating_add(ask.tokens));
        let max_requests = strictest(|l| l.requests_per_day).unwrap_or(-1);
        let max_tokens = strictest(|l| l.tokens_per_day).unwrap_or(-1);
        candidates.push((
            *user_id,
            *day,
            calls,
            tokens,
            max_requests,
            max_tokens,
            spare,
        ));
    }
    let mut fits = HashMap::new();
    for chunk in candidates.chunks(100) {
        const COLUMNS: usize = 8;
        let rows: Vec<String> = (0..chunk.len())
            .map(|i| {
                let n = COLUMNS * i;
                format!(
                    "SELECT CAST(${} AS BIGINT) AS v_user, CAST(${} AS TEXT) AS v_day, \
                     CAST(${} AS BIGINT) AS v_calls, CAST(${} AS BIGINT) AS v_tokens, \
                     CAST(${} AS BIGINT) AS v_max_requests, CAST(${} AS BIGINT) AS v_max_tokens, \
                     CAST(${} AS BIGINT) AS v_spare_requests, CAST(${} AS BIGINT) AS v_spare_tokens",
                    n + 1,
                    n + 2,
                    n + 3,
                    n + 4,
                    n + 5,
                    n + 6,
                    n + 7,
                    n + 8
                )
            })
            .collect();
        // The spare is taken (added) once and must fit twice.
        let sql = format!(
            "UPDATE usage_daily SET requests = requests + v.v_calls + v.v_spare_requests, \
             tokens = tokens + v.v_tokens + v.v_spare_tokens \
             FROM ({}) AS v \
             WHERE usage_daily.user_id = v.v_user AND usage_daily.day = v.v_day \
             AND (v.v_max_requests < 0 OR \
                  usage_daily.requests + v.v_calls + 2 * v.v_spare_requests <= v.v_max_requests) \
             AND (v.v_max_tokens < 0 OR \
                  usage_daily.tokens + v.v_tokens + 2 * v.v_spare_tokens <= v.v_max_tokens) \
             RETURNING user_id, day",
            rows.join(" UNION ALL ")
        );
        let mut query = sqlx::query_as::<_, (i64, String)>(&sql);
        for (user_id, day, calls, tokens, max_requests, max_tokens, spare) in chunk {
            query = query
                .bind(*user_id)
                .bind(*day)
                .bind(*calls)
                .bind(*tokens)
                .bind(*max_requests)
                .bind(*max_tokens)
                .bind(spare.requests)
                .bind(spare.tokens);
        }
        let spares: HashMap<i64, Headroom> = chunk
            .iter()
            .map(|candidate| (candidate.0, candidate.6))
            .collect();
        for (user_id, day) in query.fetch_all(&mut *conn).await? {
            fits.insert((user_id, day), spares[&user_id]);
        }
    }
    Ok(fits)
}

/// Near a limit (or across midnight): the user's row read, each ask
/// decided in arrival order, the sums of the admitted ones written.
async fn one_by_one(
    conn: &mut sqlx::AnyConnection,
    user_id: i64,
    day: &str,
    group: &[&Ask],
    window: &mut Window,
) -> Result<Vec<Result<(), Refusal>>, sqlx::Error> {
    // Read under the batch's locks (or SQLite's write lock).
    let (requests, tokens): (i64, i64) =
        sqlx::query_as("SELECT requests, tokens FROM usage_daily WHERE user_id = $1 AND day = $2")
            .bind(user_id)
            .bind(day)
            .fetch_one(&mut *conn)
            .await?;
    let mut day_use = DayUse { requests, tokens };
    let decided: Vec<Result<(), Refusal>> = group
        .iter()
        .map(|ask| {
            decide(ask, &day_use, window)?;
            day_use.requests += 1;
            day_use.tokens = day_use.tokens.saturating_add(ask.tokens);
            window.add(ask.now_ms);
            Ok(())
        })
        .collect();
    if day_use.requests > requests {
        sqlx::query(
            "UPDATE usage_daily SET requests = requests + $3, tokens = tokens + $4 \
             WHERE user_id = $1 AND day = $2",
        )
        .bind(user_id)
        .bind(day)
        .bind(day_use.requests - requests)
        .bind(day_use.tokens - tokens)
        .execute(conn)
        .await?;
    }
    Ok(decided)
}

/// What a user has used (and holds) today so far in this batch.
struct DayUse {
    requests: i64,
    tokens: i64,
}

/// Whether one more call fits the day's requests and tokens and the
/// minute's requests; the first limit it would overshoot otherwise.
fn decide(ask: &Ask, day: &DayUse, window: &Window) -> Result<(), Refusal> {
    if let Some(limit) = ask.limits.requests_per_day {
        if day.requests + 1 > limit {
            return Err(Refusal::RequestsPerDay { limit });
        }
    }
    if let Some(limit) = ask.limits.tokens_per_day {
        if day.tokens.saturating_add(ask.tokens) > limit {
            return Err(Refusal::TokensPerDay { limit });
        }
    }
    if let Some(limit) = ask.limits.requests_per_minute {
        let (recent, oldest) = window.count_at(ask.now_ms);
        if recent >= limit {
            // The latest moment a call in the oldest bucket can have been
            // made: room comes back once that moment leaves the window.
            let oldest_at = oldest.map_or(ask.now_ms, |bucket| bucket + rate_window::BUCKET_MS - 1);
            return Err(Refusal::RequestsPerMinute { limit, oldest_at });
        }
    }
    Ok(())
}

/// Reserves one request and `tokens` for `user_id` at `now_ms` in a
/// transaction of its own, or says which limit it would overshoot (and
/// changes nothing). Calls are admitted in batches by the ledger writer
/// (`reserve_many`); this is the same decision for a batch of one.
pub async fn reserve_one(
    db: &super::Db,
    user_id: i64,
    day: &str,
    now_ms: i64,
    tokens: i64,
    limits: Limits,
    tag: Tag<'_>,
) -> Result<Result<Reservation, Refusal>, sqlx::Error> {
    let ask = Ask::new(user_id, day.to_owned(), now_ms, tokens, limits);
    let mut conn = db.acquire().await?;
    let decided = reserve_many(&mut conn, &[ask], &Default::default(), &[], tag).await?;
    Ok(decided
        .answers
        .into_iter()
        .next()
        .expect("one ask, one answer")
        .map_err(|declined| declined.refusal))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ask(tokens: i64, limits: Limits) -> Ask {
        Ask::new(1, "2026-12-01".into(), 1_000_000, tokens, limits)
    }

    const NONE: Limits = Limits {
        requests_per_minute: None,
        requests_per_day: None,
        tokens_per_day: None,
    };

    #[test]
    fn the_first_limit_overshot_is_named() {
        let day = DayUse {
            requests: 5,
            tokens: 900,
        };
        let window = Window::default();
        let per_day = Limits {
            requests_per_day: Some(5),
            ..NONE
        };
        assert_eq!(
            decide(&ask(10, per_day), &day, &window),
            Err(Refusal::RequestsPerDay { limit: 5 })
        );
        let tokens = Limits {
            tokens_per_day: Some(1_000),
            ..NONE
        };
        assert!(decide(&ask(100, tokens), &day, &window).is_ok());
        assert_eq!(
            decide(&ask(101, tokens), &day, &window),
            Err(Refusal::TokensPerDay { limit: 1_000 })
        );
        let mut busy = Window::default();
        busy.add(999_000);
        let per_minute = Limits {
            requests_per_minute: Some(1),
            ..NONE
        };
        assert_eq!(
            decide(&ask(1, per_minute), &day, &busy),
            Err(Refusal::RequestsPerMinute {
                limit: 1,
                oldest_at: 999_099
            })
        );
        assert!(decide(&ask(i64::MAX, NONE), &day, &busy).is_ok());
    }
}
