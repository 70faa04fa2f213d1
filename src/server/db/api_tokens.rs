//! Queries on `api_tokens`: personal tokens for the gateway, stored as hashes.

use sqlx::Row;

use super::{users::UserRow, Db};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRow {
    pub id: i64,
    pub user_id: i64,
    pub name: String,
    pub prefix: String,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
}

const COLUMNS: &str = "id, user_id, name, prefix, created_at, last_used_at";

fn from_row(row: &sqlx::any::AnyRow) -> Result<TokenRow, sqlx::Error> {
    Ok(TokenRow {
        id: row.try_get("id")?,
        user_id: row.try_get("user_id")?,
        name: row.try_get("name")?,
        prefix: row.try_get("prefix")?,
        created_at: row.try_get("created_at")?,
        last_used_at: row.try_get("last_used_at")?,
    })
}

/// Why a token could not be stored.
#[derive(Debug, thiserror::Error)]
pub enum InsertError {
    #[error("a live token with this name exists")]
    NameTaken,
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

pub async fn insert(
    db: impl super::Exec<'_>,
    user_id: i64,
    name: &str,
    prefix: &str,
    token_hash: &str,
    now_ms: i64,
) -> Result<TokenRow, InsertError> {
    let sql = format!(
        "INSERT INTO api_tokens (user_id, name, prefix, token_hash, created_at) \
         VALUES ($1, $2, $3, $4, $5) RETURNING {COLUMNS}"
    );
    let row = sqlx::query(&sql)
        .bind(user_id)
        .bind(name)
        .bind(prefix)
        .bind(token_hash)
        .bind(now_ms)
        .fetch_one(db)
        .await
        .map_err(|err| match &err {
            sqlx::Error::Database(db_err) if db_err.is_unique_violation() => InsertError::NameTaken,
            _ => InsertError::Database(err),
        })?;
    Ok(from_row(&row)?)
}

/// A user's live tokens, newest first.
pub async fn live_for_user(db: &Db, user_id: i64) -> Result<Vec<TokenRow>, sqlx::Error> {
    let sql = format!(
        "SELECT {COLUMNS} FROM api_tokens WHERE user_id = $1 AND revoked_at IS NULL ORDER BY id DESC"
    );
    let rows = sqlx::query(&sql).bind(user_id).fetch_all(db).await?;
    rows.iter().map(from_row).collect()
}

/// The live token with this hash and its owner, in one query.
pub async fn find_live_by_hash(
    db: &Db,
    token_hash: &str,
) -> Result<Option<(i64, UserRow)>, sqlx::Error> {
    let columns = super::users::COLUMNS
        .split(", ")
        .map(|c| format!("u.{c}"))
        .collect::<Vec<_>>()
        .join(", ");
    let sql = format!(
        "SELECT t.id AS token_id, {columns} FROM api_tokens t JOIN users u ON u.id = t.user_id \
         WHERE t.token_hash = $1 AND t.revoked_at IS NULL"
    );
    let row = sqlx::query(&sql)
        .bind(token_hash)
        .fetch_optional(db)
        .await?;
    match row {
        None => Ok(None),
        Some(row) => Ok(Some((
            row.try_get("token_id")?,
            super::users::from_row(&row)?,
        ))),
    }
}

/// Revokes a live token. With `owner`, only if that user owns it (a user
/// revoking their own); without, any token (admins). Returns the revoked row.
pub async fn revoke(
    db: impl super::Exec<'_>,
    token_id: i64,
    owner: Option<i64>,
    now_ms: i64,
) -> Result<Option<TokenRow>, sqlx::Error> {
    let sql = format!(
        "UPDATE api_tokens SET revoked_at = $1 \
         WHERE id = $2 AND revoked_at IS NULL AND ($3 < 0 OR user_id = $3) RETURNING {COLUMNS}"
    );
    let row = sqlx::query(&sql)
        .bind(now_ms)
        .bind(token_id)
        .bind(owner.unwrap_or(-1))
        .fetch_optional(db)
        .await?;
    row.as_ref().map(from_row).transpose()
}

/// Revokes a user's live token by name (the operator CLI).
pub async fn revoke_by_name(
    db: impl super::Exec<'_>,
    user_id: i64,
    name: &str,
    now_ms: i64,
) -> Result<Option<TokenRow>, sqlx::Error> {
    let sql = format!(
        "UPDATE api_tokens SET revoked_at = $1 \
         WHERE user_id = $2 AND name = $3 AND revoked_at IS NULL RETURNING {COLUMNS}"
    );
    let row = sqlx::query(&sql)
        .bind(now_ms)
        .bind(user_id)
        .bind(name)
        .fetch_optional(db)
        .await?;
    row.as_ref().map(from_row).transpose()
}

pub async fn mark_used(db: &Db, token_id: i64, at: i64) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE api_tokens SET last_used_at = $1 WHERE id = $2")
        .bind(at)
        .bind(token_id)
        .execute(db)
        .await
        .map(|_| ())
}
