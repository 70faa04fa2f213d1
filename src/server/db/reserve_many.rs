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

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use super::{
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
}

/// Decides `asks` in one transaction on `conn`; answers in the same order.
/// On an error nothing is reserved.
pub async fn reserve_many(
    conn: &mut sqlx::AnyConnection,
    asks: &[Ask],
    tag: Tag<'_>,
) -> Result<Vec<Result<Reservation, Refusal>>, sqlx::Error> {
    let mut by_user: BTreeMap<(i64, &str), Vec<usize>> = BTreeMap::new();
    for (i, ask) in asks.iter().enumerate() {
        by_user.entry((ask.user_id, &ask.day)).or_default().push(i);
    }
    let mut tx = sqlx::Connection::begin(conn).await?;
    // A write first: SQLite then holds its write lock before anything is read.
    let days: Vec<(i64, &str)> = by_user.keys().copied().collect();
    insert_days(&mut tx, &days).await?;
    if tx.backend_name() != "SQLite" {
        lock_in_order(&mut tx, &days).await?;
    }
    let mut windows = read_windows(&mut tx, asks).await?;
    let fits = add_where_all_fit(&mut tx, &by_user, asks, &windows).await?;
    let mut answers: Vec<Option<Result<Reservation, Refusal>>> = vec![None; asks.len()];
    let mut admitted = Vec::new();
    let mut buckets: BTreeMap<(i64, i64), i64> = BTreeMap::new();
    for ((user_id, day), indices) in &by_user {
        let group: Vec<&Ask> = indices.iter().map(|&i| &asks[i]).collect();
        // Admitted calls join their user's window, across the user's days.
        let window = windows.entry(*user_id).or_default();
        let decided = if fits.contains(&(*user_id, (*day).to_owned())) {
            group.iter().for_each(|ask| window.add(ask.now_ms));
            vec![Ok(()); group.len()]
        } else {
            one_by_one(&mut tx, *user_id, day, &group, window).await?
        };
        for ((&i, ask), decision) in indices.iter().zip(&group).zip(decided) {
            if let Err(refusal) = decision {
                answers[i] = Some(Err(refusal));
                continue;
            }
            let rate_bucket = rate_window::bucket_of(ask.now_ms);
            *buckets.entry((*user_id, rate_bucket)).or_default() += 1;
            let reservation = Reservation {
                id: reservations::new_id(),
                user_id: *user_id,
                day: (*day).to_owned(),
                tokens: ask.tokens,
                rate_bucket,
            };
            admitted.push(reservation.clone());
            answers[i] = Some(Ok(reservation));
        }
    }
    let counts: Vec<(i64, i64, i64)> = buckets
        .into_iter()
        .map(|((user_id, bucket), calls)| (user_id, bucket, calls))
        .collect();
    rate_window::add_many(&mut tx, &counts).await?;
    let rows: Vec<reservations::Row> = admitted
        .iter()
        .map(|r| reservations::Row {
            kind: Kind::Platform,
            user_id: r.user_id,
            day: &r.day,
            tokens: r.tokens,
            cost_micro_usd: 0,
            rate_bucket: Some(r.rate_bucket),
        })
        .collect();
    let ids: Vec<i64> = admitted.iter().map(|r| r.id).collect();
    reservations::insert_many(&mut tx, &ids, &rows, tag).await?;
    tx.commit().await?;
    Ok(answers
        .into_iter()
        .map(|answer| answer.expect("every ask is answered"))
        .collect())
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

/// On Postgres, locks the batch's users in ascending order before anything
/// is read: every instance's admission of a user then waits for the one
/// before it, whatever the day (the per-minute window spans midnight), and
/// two batches take their locks in the same order, so they cannot deadlock.
/// (SQLite locks the whole database.)
async fn lock_in_order(
    conn: &mut sqlx::AnyConnection,
    days: &[(i64, &str)],
) -> Result<(), sqlx::Error> {
    let users: BTreeSet<i64> = days.iter().map(|(user_id, _)| *user_id).collect();
    let users: Vec<i64> = users.into_iter().collect();
    for chunk in users.chunks(500) {
        let list = super::integer_list(chunk);
        sqlx::query(&format!(
            "SELECT id FROM users WHERE id IN ({list}) ORDER BY id FOR NO KEY UPDATE"
        ))
        .fetch_all(&mut *conn)
        .await?;
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
/// them carries. The users (and days) that fit.
async fn add_where_all_fit(
    conn: &mut sqlx::AnyConnection,
    by_user: &BTreeMap<(i64, &str), Vec<usize>>,
    asks: &[Ask],
    windows: &HashMap<i64, Window>,
) -> Result<HashSet<(i64, String)>, sqlx::Error> {
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
        let latest = group.iter().map(|ask| ask.now_ms).max().unwrap_or(0);
        let in_window = windows.get(user_id).map_or(0, |w| w.count_at(latest).0);
        if strictest(|l| l.requests_per_minute).is_some_and(|limit| in_window + calls > limit) {
            continue;
        }
        let tokens = group
            .iter()
            .fold(0i64, |sum, ask| sum.saturating_add(ask.tokens));
        let max_requests = strictest(|l| l.requests_per_day).unwrap_or(-1);
        let max_tokens = strictest(|l| l.tokens_per_day).unwrap_or(-1);
        candidates.push((*user_id, *day, calls, tokens, max_requests, max_tokens));
    }
    let mut fits = HashSet::new();
    for chunk in candidates.chunks(100) {
        let rows: Vec<String> = (0..chunk.len())
            .map(|i| {
                let n = 6 * i;
                format!(
                    "SELECT CAST(${} AS BIGINT) AS v_user, CAST(${} AS TEXT) AS v_day, \
                     CAST(${} AS BIGINT) AS v_calls, CAST(${} AS BIGINT) AS v_tokens, \
                     CAST(${} AS BIGINT) AS v_max_requests, CAST(${} AS BIGINT) AS v_max_tokens",
                    n + 1,
                    n + 2,
                    n + 3,
                    n + 4,
                    n + 5,
                    n + 6
                )
            })
            .collect();
        let sql = format!(
            "UPDATE usage_daily SET requests = requests + v.v_calls, tokens = tokens + v.v_tokens \
             FROM ({}) AS v \
             WHERE usage_daily.user_id = v.v_user AND usage_daily.day = v.v_day \
             AND (v.v_max_requests < 0 OR usage_daily.requests + v.v_calls <= v.v_max_requests) \
             AND (v.v_max_tokens < 0 OR usage_daily.tokens + v.v_tokens <= v.v_max_tokens) \
             RETURNING user_id, day",
            rows.join(" UNION ALL ")
        );
        let mut query = sqlx::query_as::<_, (i64, String)>(&sql);
        for (user_id, day, calls, tokens, max_requests, max_tokens) in chunk {
            query = query
                .bind(*user_id)
                .bind(*day)
                .bind(*calls)
                .bind(*tokens)
                .bind(*max_requests)
                .bind(*max_tokens);
        }
        fits.extend(query.fetch_all(&mut *conn).await?);
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

#[cfg(test)]
mod tests {
    use super::*;

    fn ask(tokens: i64, limits: Limits) -> Ask {
        Ask {
            user_id: 1,
            day: "2026-12-01".into(),
            now_ms: 1_000_000,
            tokens,
            limits,
        }
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
