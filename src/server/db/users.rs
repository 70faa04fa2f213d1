//! Queries on `users`.

use sqlx::Row;

use super::Db;
use crate::model::caps::OwnKeyCaps;
pub use crate::model::domain::Role;

/// A user row. `password_hash` is a PHC string, not a secret worth redacting,
/// but it still never leaves the server.
#[derive(Debug, Clone)]
pub struct UserRow {
    pub id: i64,
    pub email: String,
    pub password_hash: String,
    pub role: Role,
    pub disabled: bool,
    pub created_at: i64,
    /// Opted in to the free tier when their own key fails.
    pub fallback_to_free: bool,
    /// Daily caps the user set on their own key.
    pub own_key_caps: OwnKeyCaps,
}

impl UserRow {
    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }

    pub fn to_view(&self) -> crate::model::UserView {
        crate::model::UserView {
            id: self.id,
            email: self.email.clone(),
            is_admin: self.is_admin(),
        }
    }
}

/// Emails compare case-insensitively; this is the form stored in `email_norm`.
pub fn normalize_email(email: &str) -> String {
    email.trim().to_lowercase()
}

pub(super) const COLUMNS: &str =
    "id, email, password_hash, role, disabled, created_at, fallback_to_free, \
     own_key_tokens_per_day, own_key_micro_usd_per_day";

pub(super) fn from_row(row: &sqlx::any::AnyRow) -> Result<UserRow, sqlx::Error> {
    Ok(UserRow {
        id: row.try_get("id")?,
        email: row.try_get("email")?,
        password_hash: row.try_get("password_hash")?,
        role: super::word(row, "role")?,
        disabled: row.try_get::<i64, _>("disabled")? != 0,
        created_at: row.try_get("created_at")?,
        fallback_to_free: row.try_get::<i64, _>("fallback_to_free")? != 0,
        own_key_caps: OwnKeyCaps {
            tokens_per_day: row.try_get("own_key_tokens_per_day")?,
            micro_usd_per_day: row.try_get("own_key_micro_usd_per_day")?,
        },
    })
}

pub async fn find_by_email(db: &Db, email: &str) -> Result<Option<UserRow>, sqlx::Error> {
    let sql = format!("SELECT {COLUMNS} FROM users WHERE email_norm = $1");
    let row = sqlx::query(&sql)
        .bind(normalize_email(email))
        .fetch_optional(db)
        .await?;
    row.as_ref().map(from_row).transpose()
}

pub async fn find_by_id(db: &Db, id: i64) -> Result<Option<UserRow>, sqlx::Error> {
    let sql = format!("SELECT {COLUMNS} FROM users WHERE id = $1");
    let row = sqlx::query(&sql).bind(id).fetch_optional(db).await?;
    row.as_ref().map(from_row).transpose()
}

/// Inserts a user. When `role` is `None` the account becomes an admin exactly
/// when no user exists yet — decided inside the INSERT so two simultaneous
/// first signups cannot both become admin by racing a separate count.
pub async fn insert(
    db: &Db,
    email: &str,
    password_hash: &str,
    role: Option<Role>,
    now_ms: i64,
) -> Result<UserRow, sqlx::Error> {
    let role_sql = match role {
        Some(Role::Admin) => "'admin'",
        Some(Role::User) => "'user'",
        None => "CASE WHEN EXISTS (SELECT 1 FROM users) THEN 'user' ELSE 'admin' END",
    };
    let sql = format!(
        "INSERT INTO users (email, email_norm, password_hash, role, disabled, created_at) \
         SELECT $1, $2, $3, {role_sql}, 0, $4 RETURNING {COLUMNS}"
    );
    let mut tx = db.begin().await?;
    // "The first account is an admin" reads the table it writes.
    serialise_admin_changes(&mut tx).await?;
    let row = sqlx::query(&sql)
        .bind(email.trim())
        .bind(normalize_email(email))
        .bind(password_hash)
        .bind(now_ms)
        .fetch_one(&mut *tx)
        .await?;
    let user = from_row(&row)?;
    tx.commit().await?;
    Ok(user)
}

/// Changes that decide who is an admin ("the first account is an admin",
/// "the last admin stays") read the table they write, so on Postgres two
/// of them at once could both see the state before the other (READ
/// COMMITTED): they queue on one advisory lock instead. SQLite runs each
/// statement alone.
async fn serialise_admin_changes(conn: &mut sqlx::AnyConnection) -> Result<(), sqlx::Error> {
    /// The advisory lock's key (any number no other lock uses).
    const ADMIN_CHANGES: i64 = 0x6b65_7977_6172_6401;
    if conn.backend_name() != "SQLite" {
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(ADMIN_CHANGES)
            .fetch_one(&mut *conn)
            .await?;
    }
    Ok(())
}

/// Runs `sql` (an UPDATE of user `id`) after the admin-changes lock, in
/// the caller's transaction; whether it changed the row.
async fn update_keeping_an_admin(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    sql: &str,
    id: i64,
) -> Result<bool, sqlx::Error> {
    serialise_admin_changes(tx).await?;
    let done = sqlx::query(sql).bind(id).execute(&mut **tx).await?;
    Ok(done.rows_affected() == 1)
}

/// The user's default system prompt.
pub async fn system_prompt(db: &Db, id: i64) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar("SELECT system_prompt FROM users WHERE id = $1")
        .bind(id)
        .fetch_optional(db)
        .await
        .map(Option::flatten)
}

/// Sets (or with `None` clears) the user's default system prompt.
pub async fn set_system_prompt(db: &Db, id: i64, prompt: Option<&str>) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE users SET system_prompt = $1 WHERE id = $2")
        .bind(prompt)
        .bind(id)
        .execute(db)
        .await
        .map(|_| ())
}

pub async fn update_password_hash(db: &Db, id: i64, hash: &str) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE users SET password_hash = $1 WHERE id = $2")
        .bind(hash)
        .bind(id)
        .execute(db)
        .await
        .map(|_| ())
}

pub async fn set_disabled(
    db: impl super::Exec<'_>,
    id: i64,
    disabled: bool,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query("UPDATE users SET disabled = $1 WHERE id = $2")
        .bind(i64::from(disabled))
        .bind(id)
        .execute(db)
        .await?;
    Ok(done.rows_affected() == 1)
}

/// Users newest first, for the admin overview.
pub async fn list(db: &Db, limit: i64) -> Result<Vec<UserRow>, sqlx::Error> {
    let sql = format!("SELECT {COLUMNS} FROM users ORDER BY id DESC LIMIT $1");
    let rows = sqlx::query(&sql).bind(limit).fetch_all(db).await?;
    rows.iter().map(from_row).collect()
}

pub async fn set_fallback_to_free(
    db: impl super::Exec<'_>,
    id: i64,
    on: bool,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE users SET fallback_to_free = $1 WHERE id = $2")
        .bind(i64::from(on))
        .bind(id)
        .execute(db)
        .await
        .map(|_| ())
}

pub async fn set_own_key_caps(
    db: impl super::Exec<'_>,
    id: i64,
    caps: OwnKeyCaps,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE users SET own_key_tokens_per_day = $1, own_key_micro_usd_per_day = $2 WHERE id = $3",
    )
    .bind(caps.tokens_per_day)
    .bind(caps.micro_usd_per_day)
    .bind(id)
    .execute(db)
    .await
    .map(|_| ())
}

pub async fn set_plan(db: impl super::Exec<'_>, id: i64, plan_id: i64) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE users SET plan_id = $1 WHERE id = $2")
        .bind(plan_id)
        .bind(id)
        .execute(db)
        .await
        .map(|_| ())
}

/// Another enabled admin than `id` exists (the guard of the two updates below).
const ANOTHER_ADMIN: &str =
    "(SELECT COUNT(*) FROM users WHERE role = 'admin' AND disabled = 0 AND id <> $1) > 0";

/// Sets the role, unless that would leave no enabled admin. Returns false
/// when refused. The check and the change are one statement; run it in a
/// transaction (`tx`), which holds the admin-changes lock to its end.
pub async fn set_role_keeping_an_admin(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    id: i64,
    admin: bool,
) -> Result<bool, sqlx::Error> {
    let sql = if admin {
        "UPDATE users SET role = 'admin' WHERE id = $1".to_owned()
    } else {
        format!(
            "UPDATE users SET role = 'user' WHERE id = $1 AND (role <> 'admin' OR {ANOTHER_ADMIN})"
        )
    };
    update_keeping_an_admin(tx, &sql, id).await
}

/// Disables or enables, unless that would leave no enabled admin (in a
/// transaction, as above).
pub async fn set_disabled_keeping_an_admin(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    id: i64,
    disabled: bool,
) -> Result<bool, sqlx::Error> {
    let sql = if disabled {
        format!(
            "UPDATE users SET disabled = 1 WHERE id = $1 AND (role <> 'admin' OR {ANOTHER_ADMIN})"
        )
    } else {
        "UPDATE users SET disabled = 0 WHERE id = $1".to_owned()
    };
    update_keeping_an_admin(tx, &sql, id).await
}
