//! Reservations against the plan's limits, decided in batches: every call
//! waiting to be admitted is answered by one transaction, so the database
//! cost of admission is shared by the calls that arrive together instead
//! of paid by each.
//!
//! Per user and day the transaction locks the user's `usage_daily` row (a
//! no-op `UPDATE … RETURNING`; users in ascending order, so two instances'
//! batches cannot deadlock on each other), reads the per-minute window,
//! decides each ask in arrival order in memory, and writes the sums. The
//! row lock (Postgres) or the write lock (SQLite) serialises the decisions
//! of every instance, so limits hold under any concurrency.

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
    for (user_id, day) in by_user.keys() {
        sqlx::query(
            "INSERT INTO usage_daily (user_id, day, requests, tokens) VALUES ($1, $2, 0, 0) \
             ON CONFLICT (user_id, day) DO NOTHING",
        )
        .bind(user_id)
        .bind(*day)
        .execute(&mut *tx)
        .await?;
    }
    let mut answers: Vec<Option<Result<Reservation, Refusal>>> = vec![None; asks.len()];
    let mut admitted = Vec::new();
    for ((user_id, day), indices) in &by_user {
        let (requests, tokens): (i64, i64) = sqlx::query_as(
            "UPDATE usage_daily SET requests = requests WHERE user_id = $1 AND day = $2 \
             RETURNING requests, tokens",
        )
        .bind(user_id)
        .bind(*day)
        .fetch_one(&mut *tx)
        .await?;
        let wants_window = indices
            .iter()
            .any(|&i| asks[i].limits.requests_per_minute.is_some());
        let mut window = if wants_window {
            let earliest = indices.iter().map(|&i| asks[i].now_ms).min().unwrap_or(0);
            Window::read(&mut tx, *user_id, earliest).await?
        } else {
            Window::default()
        };
        let mut day_use = DayUse { requests, tokens };
        let mut buckets: BTreeMap<i64, i64> = BTreeMap::new();
        let (before_requests, before_tokens) = (requests, tokens);
        for &i in indices {
            let ask = &asks[i];
            if let Err(refusal) = decide(ask, &day_use, &window) {
                answers[i] = Some(Err(refusal));
                continue;
            }
            day_use.requests += 1;
            day_use.tokens = day_use.tokens.saturating_add(ask.tokens);
            window.add(ask.now_ms);
            *buckets
                .entry(rate_window::bucket_of(ask.now_ms))
                .or_default() += 1;
            let reservation = Reservation {
                id: reservations::new_id(),
                user_id: *user_id,
                day: (*day).to_owned(),
                tokens: ask.tokens,
                rate_bucket: rate_window::bucket_of(ask.now_ms),
            };
            admitted.push(reservation.clone());
            answers[i] = Some(Ok(reservation));
        }
        if day_use.requests > before_requests {
            sqlx::query(
                "UPDATE usage_daily SET requests = requests + $3, tokens = tokens + $4 \
                 WHERE user_id = $1 AND day = $2",
            )
            .bind(user_id)
            .bind(*day)
            .bind(day_use.requests - before_requests)
            .bind(day_use.tokens - before_tokens)
            .execute(&mut *tx)
            .await?;
            for (bucket, calls) in buckets {
                rate_window::add(&mut tx, *user_id, bucket, calls).await?;
            }
        }
    }
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
