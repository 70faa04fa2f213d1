//! Failed login attempts, counted per account and per client IP over a window.

use super::Db;

/// Attempts within the window for this email or this IP, and the oldest one's
/// time (to tell the user when they may try again).
#[derive(Debug, Clone, Copy, Default)]
pub struct RecentFailures {
    pub by_email: i64,
    pub by_ip: i64,
    pub oldest_by_email: Option<i64>,
    pub oldest_by_ip: Option<i64>,
}

pub async fn recent(
    db: &Db,
    email_norm: &str,
    ip: &str,
    since_ms: i64,
) -> Result<RecentFailures, sqlx::Error> {
    let (by_email, oldest_by_email): (i64, Option<i64>) = sqlx::query_as(
        "SELECT COUNT(*), MIN(at) FROM login_failures WHERE email_norm = $1 AND at > $2",
    )
    .bind(email_norm)
    .bind(since_ms)
    .fetch_one(db)
    .await?;
    let (by_ip, oldest_by_ip): (i64, Option<i64>) =
        sqlx::query_as("SELECT COUNT(*), MIN(at) FROM login_failures WHERE ip = $1 AND at > $2")
            .bind(ip)
            .bind(since_ms)
            .fetch_one(db)
            .await?;
    Ok(RecentFailures {
        by_email,
        by_ip,
        oldest_by_email,
        oldest_by_ip,
    })
}

pub async fn record(db: &Db, email_norm: &str, ip: &str, at_ms: i64) -> Result<(), sqlx::Error> {
    sqlx::query("INSERT INTO login_failures (email_norm, ip, at) VALUES ($1, $2, $3)")
        .bind(email_norm)
        .bind(ip)
        .bind(at_ms)
        .execute(db)
        .await
        .map(|_| ())
}

/// A successful login forgives the account's failures (not the IP's).
pub async fn clear_for_email(db: &Db, email_norm: &str) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM login_failures WHERE email_norm = $1")
        .bind(email_norm)
        .execute(db)
        .await
        .map(|_| ())
}

pub async fn prune_older_than(db: &Db, before_ms: i64) -> Result<u64, sqlx::Error> {
    let done = sqlx::query("DELETE FROM login_failures WHERE at <= $1")
        .bind(before_ms)
        .execute(db)
        .await?;
    Ok(done.rows_affected())
}
