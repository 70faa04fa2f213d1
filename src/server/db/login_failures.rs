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

/// Records a login attempt as a failure before its password is checked,
/// unless the email or the IP already has `max` failures since `since_ms`:
/// then nothing is recorded and the counts say until when. Deciding and
/// recording in one transaction (serialised per email and IP) means a
/// burst of attempts sent at once cannot all be checked: at most `max` get
/// through. A successful login then clears the account's failures, this
/// one included.
pub async fn try_record_attempt(
    db: &Db,
    email_norm: &str,
    ip: &str,
    at_ms: i64,
    since_ms: i64,
    max: i64,
) -> Result<Result<(), RecentFailures>, sqlx::Error> {
    let mut tx = db.begin().await?;
    if tx.backend_name() == "SQLite" {
        // A write first: SQLite holds its write lock from here to the end.
        insert(&mut tx, email_norm, ip, at_ms).await?;
    } else {
        // Attempts on one email (class 1) or one IP (class 2) queue here;
        // emails before IPs, so two attempts cannot wait on each other.
        for (class, key) in [(1i32, email_norm), (2i32, ip)] {
            sqlx::query("SELECT pg_advisory_xact_lock($1, hashtext($2))")
                .bind(class)
                .bind(key)
                .fetch_one(&mut *tx)
                .await?;
        }
        insert(&mut tx, email_norm, ip, at_ms).await?;
    }
    let counted = count(&mut tx, email_norm, ip, since_ms).await?;
    // The attempt itself is counted: it may be the `max`-th, not more.
    if counted.by_email > max || counted.by_ip > max {
        tx.rollback().await?;
        let before = RecentFailures {
            by_email: counted.by_email - 1,
            by_ip: counted.by_ip - 1,
            ..counted
        };
        return Ok(Err(before));
    }
    tx.commit().await?;
    Ok(Ok(()))
}

async fn insert(
    conn: &mut sqlx::AnyConnection,
    email_norm: &str,
    ip: &str,
    at_ms: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query("INSERT INTO login_failures (email_norm, ip, at) VALUES ($1, $2, $3)")
        .bind(email_norm)
        .bind(ip)
        .bind(at_ms)
        .execute(conn)
        .await
        .map(|_| ())
}

pub async fn recent(
    db: &Db,
    email_norm: &str,
    ip: &str,
    since_ms: i64,
) -> Result<RecentFailures, sqlx::Error> {
    let mut conn = db.acquire().await?;
    count(&mut conn, email_norm, ip, since_ms).await
}

async fn count(
    conn: &mut sqlx::AnyConnection,
    email_norm: &str,
    ip: &str,
    since_ms: i64,
) -> Result<RecentFailures, sqlx::Error> {
    let (by_email, oldest_by_email): (i64, Option<i64>) = sqlx::query_as(
        "SELECT COUNT(*), MIN(at) FROM login_failures WHERE email_norm = $1 AND at > $2",
    )
    .bind(email_norm)
    .bind(since_ms)
    .fetch_one(&mut *conn)
    .await?;
    let (by_ip, oldest_by_ip): (i64, Option<i64>) =
        sqlx::query_as("SELECT COUNT(*), MIN(at) FROM login_failures WHERE ip = $1 AND at > $2")
            .bind(ip)
            .bind(since_ms)
            .fetch_one(&mut *conn)
            .await?;
    Ok(RecentFailures {
        by_email,
        by_ip,
        oldest_by_email,
        oldest_by_ip,
    })
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
