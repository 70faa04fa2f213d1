//! What a user's own key used per UTC day, and atomic holds against the
//! caps the user set on it.
//!
//! Every call on a user's key adds its tokens and cost here (the ledger
//! writer does that with the ledger row). When the user has caps, a call
//! first holds its worst case with one conditional UPDATE, which cannot
//! race: Postgres re-checks the condition on the locked row, SQLite
//! serialises writers. The ledger writer later replaces the hold by the
//! real use.

use std::collections::BTreeMap;

use super::{
    reservations::{self, Kind, Tag},
    Db,
};
use crate::model::caps::OwnKeyCaps;

/// The worst case of one capped call, held until its ledger row is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CapHold {
    /// Its row in `reservations`.
    pub reservation_id: i64,
    pub user_id: i64,
    pub day: String,
    pub tokens: i64,
    pub cost_micro_usd: i64,
}

/// Which cap refused a hold, and what the day's use was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CapRefusal {
    Tokens { cap: i64, used: i64 },
    Spend { cap: i64, used: i64 },
}

/// Holds `tokens` and `cost_micro_usd` for one call, or says which cap it
/// could overshoot (and changes nothing).
pub async fn hold(
    db: &Db,
    user_id: i64,
    day: &str,
    tokens: i64,
    cost_micro_usd: i64,
    caps: OwnKeyCaps,
    tag: Tag<'_>,
) -> Result<Result<CapHold, CapRefusal>, sqlx::Error> {
    let mut tx = db.begin().await?;
    sqlx::query(
        "INSERT INTO own_key_usage_daily (user_id, day, tokens, cost_micro_usd) VALUES ($1, $2, 0, 0) \
         ON CONFLICT (user_id, day) DO NOTHING",
    )
    .bind(user_id)
    .bind(day)
    .execute(&mut *tx)
    .await?;
    let max_tokens = caps.tokens_per_day.unwrap_or(-1);
    let max_cost = caps.micro_usd_per_day.unwrap_or(-1);
    let held = sqlx::query(
        "UPDATE own_key_usage_daily SET tokens = tokens + $3, cost_micro_usd = cost_micro_usd + $4 \
         WHERE user_id = $1 AND day = $2 \
         AND ($5 < 0 OR tokens + $3 <= $5) AND ($6 < 0 OR cost_micro_usd + $4 <= $6)",
    )
    .bind(user_id)
    .bind(day)
    .bind(tokens)
    .bind(cost_micro_usd)
    .bind(max_tokens)
    .bind(max_cost)
    .execute(&mut *tx)
    .await?;
    if held.rows_affected() == 1 {
        let row = reservations::Row {
            kind: Kind::OwnKey,
            user_id,
            day,
            requests: 1,
            tokens,
            cost_micro_usd,
            rate_bucket: None,
            open_until: None,
        };
        let reservation_id = reservations::insert(&mut tx, row, tag).await?;
        tx.commit().await?;
        return Ok(Ok(CapHold {
            reservation_id,
            user_id,
            day: day.to_owned(),
            tokens,
            cost_micro_usd,
        }));
    }
    tx.rollback().await?;
    // Name the cap that refused; use may have moved since the UPDATE, so
    // with only one cap set, that one is named whatever the numbers say now.
    let (used_tokens, used_cost) = today(db, user_id, day).await?;
    Ok(Err(match caps.tokens_per_day {
        Some(cap) if caps.micro_usd_per_day.is_none() || used_tokens + tokens > cap => {
            CapRefusal::Tokens {
                cap,
                used: used_tokens,
            }
        }
        _ => CapRefusal::Spend {
            cap: caps.micro_usd_per_day.unwrap_or(0),
            used: used_cost,
        },
    }))
}

/// Changes to several users' daily use, summed so a batch of ledger rows
/// costs one statement per user and day.
#[derive(Debug, Default)]
pub struct UseChanges(BTreeMap<(i64, String), (i64, i64)>);

impl UseChanges {
    /// A call on a user's key used `tokens` and `cost`.
    pub fn add(&mut self, user_id: i64, day: &str, tokens: i64, cost_micro_usd: i64) {
        let entry = self.0.entry((user_id, day.to_owned())).or_default();
        entry.0 += tokens;
        entry.1 += cost_micro_usd;
    }

    /// A hold ends: what it held no longer counts.
    pub fn release(&mut self, hold: &CapHold) {
        self.add(hold.user_id, &hold.day, -hold.tokens, -hold.cost_micro_usd);
    }

    pub async fn apply(self, conn: &mut sqlx::AnyConnection) -> Result<(), sqlx::Error> {
        for ((user_id, day), (tokens, cost)) in self.0 {
            if tokens == 0 && cost == 0 {
                continue;
            }
            sqlx::query(
                "INSERT INTO own_key_usage_daily (user_id, day, tokens, cost_micro_usd) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (user_id, day) DO UPDATE SET \
                 tokens = own_key_usage_daily.tokens + excluded.tokens, \
                 cost_micro_usd = own_key_usage_daily.cost_micro_usd + excluded.cost_micro_usd",
            )
            .bind(user_id)
            .bind(day)
            .bind(tokens)
            .bind(cost)
            .execute(&mut *conn)
            .await?;
        }
        Ok(())
    }
}

/// The day's use of the user's key so far: (tokens, micro-USD), calls in
/// flight counted at their worst case.
pub async fn today(db: &Db, user_id: i64, day: &str) -> Result<(i64, i64), sqlx::Error> {
    let row: Option<(i64, i64)> = sqlx::query_as(
        "SELECT tokens, cost_micro_usd FROM own_key_usage_daily WHERE user_id = $1 AND day = $2",
    )
    .bind(user_id)
    .bind(day)
    .fetch_optional(db)
    .await?;
    Ok(row.unwrap_or((0, 0)))
}
