//! Reservations against the plan's limits, decided in batches: every call
//! waiting to be admitted is answered by one transaction, so the database
//! cost of admission is shared by the calls that arrive together instead
//! of paid by each.
//!
//! Per user and day (users in ascending order, so two instances' batches
//! cannot deadlock on each other) the transaction reads the per-minute
//! window (a sum in the database) and, in the common case, adds all the
//! user's asks with one conditional `UPDATE` that holds only if every one
//! of them fits. Near a limit it locks the user's row instead, decides each
//! ask in arrival order in memory and writes the sums. The row lock
//! (Postgres) or the write lock (SQLite) serialises the decisions of every
//! instance, so limits hold under any concurrency.

use std::collections::BTreeMap;

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
    let mut answers: Vec<Option<Result<Reservation, Refusal>>> = vec![None; asks.len()];
    let mut admitted = Vec::new();
    let mut buckets: BTreeMap<(i64, i64), i64> = BTreeMap::new();
    for ((user_id, day), indices) in &by_user {
        let group: Vec<&Ask> = indices.iter().map(|&i| &asks[i]).collect();
        let window = match group.iter().map(|ask| ask.now_ms).min() {
            Some(earliest) if group.iter().any(|a| a.limits.requests_per_minute.is_some()) => {
                Window::read(&mut tx, *user_id, earliest).await?
            }
            _ => Window::default(),
        };
        let decided = if all_fit(&mut tx, *user_id, day, &group, &window).await? {
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

/// The common case in one statement: every ask of the user fits, even
/// under the strictest limits any of them carries; if so, they are added.
async fn all_fit(
    conn: &mut sqlx::AnyConnection,
    user_id: i64,
    day: &str,
    group: &[&Ask],
    window: &Window,
) -> Result<bool, sqlx::Error> {
    let calls = group.len() as i64;
    let strictest =
        |limit: fn(&Limits) -> Option<i64>| group.iter().filter_map(|ask| limit(&ask.limits)).min();
    let per_minute = strictest(|l| l.requests_per_minute);
    let latest = group.iter().map(|ask| ask.now_ms).max().unwrap_or(0);
    if per_minute.is_some_and(|limit| window.count_at(latest).0 + calls > limit) {
        return Ok(false);
    }
    let tokens = group
        .iter()
        .fold(0i64, |sum, ask| sum.saturating_add(ask.tokens));
    let added = sqlx::query(
        "UPDATE usage_daily SET requests = requests + $3, tokens = tokens + $4 \
         WHERE user_id = $1 AND day = $2 AND ($5 < 0 OR requests + $3 <= $5) AND ($6 < 0 OR tokens + $4 <= $6)",
    )
    .bind(user_id)
    .bind(day)
    .bind(calls)
    .bind(tokens)
    .bind(strictest(|l| l.requests_per_day).unwrap_or(-1))
    .bind(strictest(|l| l.tokens_per_day).unwrap_or(-1))
    .execute(conn)
    .await?;
    Ok(added.rows_affected() == 1)
}

/// Near a limit: the user's row read under its lock, each ask decided in
/// arrival order, the sums of the admitted ones written.
async fn one_by_one(
    conn: &mut sqlx::AnyConnection,
    user_id: i64,
    day: &str,
    group: &[&Ask],
    mut window: Window,
) -> Result<Vec<Result<(), Refusal>>, sqlx::Error> {
    let (requests, tokens): (i64, i64) = sqlx::query_as(
        "UPDATE usage_daily SET requests = requests WHERE user_id = $1 AND day = $2 \
         RETURNING requests, tokens",
    )
    .bind(user_id)
    .bind(day)
    .fetch_one(&mut *conn)
    .await?;
    let mut day_use = DayUse { requests, tokens };
    let decided: Vec<Result<(), Refusal>> = group
        .iter()
        .map(|ask| {
            decide(ask, &day_use, &window)?;
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
            return Err(Refusal::RequestsPerMinute {
                limit,
                oldest_at: oldest.unwrap_or(ask.now_ms),
            });
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
                oldest_at: 999_000
            })
        );
        assert!(decide(&ask(i64::MAX, NONE), &day, &busy).is_ok());
    }
}
