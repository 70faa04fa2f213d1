//! `keyward seed-demo --rows N`: synthetic users and ledger rows over the
//! last year, for trying the dashboard and for its benchmark.

use crate::{
    model::{
        domain::PaidBy,
        models::{self, TokenCounts},
    },
    server::{
        clock::DAY_MS,
        db::{self, ledger::LedgerRow, rollups, users::normalize_email, Backend, Db},
    },
};

/// Rows generated and inserted at a time.
const ROWS_PER_BATCH: usize = 5_000;
const DAYS: i64 = 365;
/// A hash no password verifies against: demo accounts cannot log in.
const NO_LOGIN_HASH: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$ZGVtby1hY2NvdW50cw$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeedReport {
    pub users: usize,
    pub rows: usize,
}

/// A small, fast, deterministic generator (xorshift64*).
struct Dice(u64);

impl Dice {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

async fn demo_users(db: &Db, count: usize, now: i64) -> Result<Vec<i64>, sqlx::Error> {
    let mut ids = Vec::with_capacity(count);
    for n in 1..=count {
        let email = format!("demo-{n:04}@example.com");
        sqlx::query(
            "INSERT INTO users (email, email_norm, password_hash, role, disabled, created_at) \
             VALUES ($1, $2, $3, 'user', 0, $4) ON CONFLICT (email_norm) DO NOTHING",
        )
        .bind(&email)
        .bind(normalize_email(&email))
        .bind(NO_LOGIN_HASH)
        .bind(now - DAYS * DAY_MS)
        .execute(db)
        .await?;
        let id: i64 = sqlx::query_scalar("SELECT id FROM users WHERE email_norm = $1")
            .bind(normalize_email(&email))
            .fetch_one(db)
            .await?;
        ids.push(id);
    }
    Ok(ids)
}

/// One made-up call: mostly Haiku, 70 % on the platform key, 2 % failures.
fn synthetic_row(dice: &mut Dice, users: &[i64], at: i64) -> LedgerRow {
    let user_id = users[dice.below(users.len() as u64) as usize];
    let model = match dice.below(10) {
        0 => "claude-opus-4-7",
        1..=3 => "claude-sonnet-4-6",
        _ => "claude-haiku-4-5",
    };
    let paid_by = if dice.below(10) < 7 {
        PaidBy::Platform
    } else {
        PaidBy::OwnKey
    };
    let failed = dice.below(100) < 2;
    let tokens = if failed {
        TokenCounts::default()
    } else {
        TokenCounts {
            input: 20 + dice.below(3_000),
            output: 10 + dice.below(1_000),
            cache_creation: 0,
            cache_read: if dice.below(4) == 0 {
                dice.below(2_000)
            } else {
                0
            },
            ..TokenCounts::default()
        }
    };
    let latency_ms = 150 + dice.below(6_000) as i64;
    let status = if failed { "529" } else { "200" };
    LedgerRow {
        input_tokens: tokens.input as i64,
        output_tokens: tokens.output as i64,
        cache_creation_tokens: tokens.cache_creation as i64,
        cache_read_tokens: tokens.cache_read as i64,
        cost_micro_usd: models::cost_micro_usd(model, tokens) as i64,
        error_type: failed.then(|| "overloaded_error".to_owned()),
        latency_ms,
        ttft_ms: (!failed).then_some(latency_ms / 4),
        request_id: Some(format!("req_demo_{:012x}", dice.next() >> 16)),
        saved_micro_usd: crate::model::prices::caching_saved_micro_usd(model, tokens),
        ..LedgerRow::new(at, user_id, paid_by, model.to_owned(), status.to_owned())
    }
}

pub async fn seed_demo(
    db: &Db,
    backend: Backend,
    rows: usize,
    now: i64,
) -> Result<SeedReport, sqlx::Error> {
    let user_count = (rows / 5_000).clamp(20, 500);
    let users = demo_users(db, user_count, now).await?;
    let mut dice = Dice(0x9e37_79b9_7f4a_7c15 ^ rows as u64);
    let start = now - now.rem_euclid(DAY_MS) - (DAYS - 1) * DAY_MS;
    let span = (now - start).max(1) as u64;
    let mut written = 0;
    // Many statements per transaction: one commit (and fsync) per 50,000 rows.
    let mut tx = db.begin().await?;
    while written < rows {
        let batch: Vec<LedgerRow> = (0..ROWS_PER_BATCH.min(rows - written))
            .map(|_| {
                let at = start + dice.below(span) as i64;
                synthetic_row(&mut dice, &users, at)
            })
            .collect();
        let refs: Vec<&LedgerRow> = batch.iter().collect();
        db::ledger::insert_many(&mut tx, &refs).await?;
        written += batch.len();
        if written % (10 * ROWS_PER_BATCH) == 0 {
            tx.commit().await?;
            tx = db.begin().await?;
        }
    }
    tx.commit().await?;
    rollups::rebuild(db, backend).await?;
    Ok(SeedReport {
        users: users.len(),
        rows: written,
    })
}
