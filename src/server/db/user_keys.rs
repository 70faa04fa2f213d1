//! Queries on `user_api_keys`. Rows hold sealed keys only.

use sqlx::Row;

use super::Db;
use crate::server::vault::SealedKey;

#[derive(Debug, Clone)]
pub struct StoredKey {
    pub id: i64,
    pub user_id: i64,
    pub provider: String,
    pub sealed: SealedKey,
    pub last4: String,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
    pub rejected_at: Option<i64>,
}

const COLUMNS: &str =
    "id, user_id, provider, ciphertext, nonce, master_key_id, last4, created_at, last_used_at, rejected_at";

fn from_row(row: &sqlx::any::AnyRow) -> Result<StoredKey, sqlx::Error> {
    Ok(StoredKey {
        id: row.try_get("id")?,
        user_id: row.try_get("user_id")?,
        provider: row.try_get("provider")?,
        sealed: SealedKey {
            ciphertext: row.try_get("ciphertext")?,
            nonce: row.try_get("nonce")?,
            master_key_id: row.try_get("master_key_id")?,
        },
        last4: row.try_get("last4")?,
        created_at: row.try_get("created_at")?,
        last_used_at: row.try_get("last_used_at")?,
        rejected_at: row.try_get("rejected_at")?,
    })
}

pub async fn find(db: &Db, user_id: i64, provider: &str) -> Result<Option<StoredKey>, sqlx::Error> {
    let sql = format!("SELECT {COLUMNS} FROM user_api_keys WHERE user_id = $1 AND provider = $2");
    let row = sqlx::query(&sql)
        .bind(user_id)
        .bind(provider)
        .fetch_optional(db)
        .await?;
    row.as_ref().map(from_row).transpose()
}

/// Stores a key, replacing the user's previous one for this provider (a new
/// key starts healthy and unused). Returns true when a key was replaced.
/// Stores the user's key for `provider`, replacing the one they had. A
/// lone write, so a transaction it opens takes SQLite's write lock first.
pub async fn upsert(
    db: impl super::Exec<'_>,
    user_id: i64,
    provider: &str,
    sealed: &SealedKey,
    last4: &str,
    now_ms: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO user_api_keys \
             (user_id, provider, ciphertext, nonce, master_key_id, last4, created_at, last_used_at, rejected_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, NULL, NULL) \
         ON CONFLICT (user_id, provider) DO UPDATE SET \
             ciphertext = excluded.ciphertext, nonce = excluded.nonce, \
             master_key_id = excluded.master_key_id, last4 = excluded.last4, \
             created_at = excluded.created_at, last_used_at = NULL, rejected_at = NULL",
    )
    .bind(user_id)
    .bind(provider)
    .bind(&sealed.ciphertext)
    .bind(&sealed.nonce)
    .bind(&sealed.master_key_id)
    .bind(last4)
    .bind(now_ms)
    .execute(db)
    .await?;
    Ok(())
}

pub async fn delete(
    db: impl super::Exec<'_>,
    user_id: i64,
    provider: &str,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query("DELETE FROM user_api_keys WHERE user_id = $1 AND provider = $2")
        .bind(user_id)
        .bind(provider)
        .execute(db)
        .await?;
    Ok(done.rows_affected() > 0)
}

pub async fn mark_rejected(
    db: impl super::Exec<'_>,
    id: i64,
    now_ms: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE user_api_keys SET rejected_at = $1 WHERE id = $2")
        .bind(now_ms)
        .bind(id)
        .execute(db)
        .await
        .map(|_| ())
}

pub async fn mark_used(
    conn: &mut sqlx::AnyConnection,
    id: i64,
    at: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE user_api_keys SET last_used_at = $1 WHERE id = $2")
        .bind(at)
        .bind(id)
        .execute(conn)
        .await
        .map(|_| ())
}

/// Rows not yet on `current_master_key_id`, in id order after `after_id`.
pub async fn page_not_on(
    db: &Db,
    current_master_key_id: &str,
    after_id: i64,
    limit: i64,
) -> Result<Vec<StoredKey>, sqlx::Error> {
    let sql = format!(
        "SELECT {COLUMNS} FROM user_api_keys WHERE master_key_id <> $1 AND id > $2 ORDER BY id LIMIT $3"
    );
    let rows = sqlx::query(&sql)
        .bind(current_master_key_id)
        .bind(after_id)
        .bind(limit)
        .fetch_all(db)
        .await?;
    rows.iter().map(from_row).collect()
}

/// Replaces a row's sealed key only if it is still the one that was read
/// (same master key and nonce), so a key saved meanwhile is never overwritten.
pub async fn replace_sealed_if_unchanged(
    db: &Db,
    id: i64,
    read: &SealedKey,
    rewrapped: &SealedKey,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE user_api_keys SET ciphertext = $1, nonce = $2, master_key_id = $3 \
         WHERE id = $4 AND master_key_id = $5 AND nonce = $6",
    )
    .bind(&rewrapped.ciphertext)
    .bind(&rewrapped.nonce)
    .bind(&rewrapped.master_key_id)
    .bind(id)
    .bind(&read.master_key_id)
    .bind(&read.nonce)
    .execute(db)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// How many rows each master key protects.
pub async fn count_by_master_key(db: &Db) -> Result<Vec<(String, i64)>, sqlx::Error> {
    sqlx::query_as("SELECT master_key_id, COUNT(*) FROM user_api_keys GROUP BY master_key_id ORDER BY master_key_id")
        .fetch_all(db)
        .await
}
