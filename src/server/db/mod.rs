//! Database access: one `sqlx::AnyPool` over SQLite or PostgreSQL.
//!
//! Queries are written once, in the SQL both engines accept (`$1` placeholders,
//! integer times in unix milliseconds, 0/1 flags), and tested on both.

pub mod api_tokens;
pub mod audit;
pub mod book_locks;
pub mod conversations;
pub mod dashboard;
pub mod give_back;
pub mod leases;
pub mod ledger;
pub mod login_failures;
pub mod own_key_usage;
pub mod plans;
pub mod rate_window;
pub mod reservations;
pub mod reserve_many;
pub mod rollups;
pub mod sessions;
pub mod usage;
pub mod user_keys;
pub mod users;

use std::{path::Path, str::FromStr, time::Duration};

use sqlx::{
    any::{AnyConnectOptions, AnyPoolOptions},
    AnyPool, ConnectOptions, Executor,
};

pub type Db = AnyPool;

/// What a query runs on: the pool, or a transaction (`&mut *tx`), so one
/// function serves a lone write and a step of a larger one.
pub trait Exec<'e>: Executor<'e, Database = sqlx::Any> {}
impl<'e, T: Executor<'e, Database = sqlx::Any>> Exec<'e> for T {}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn of_url(url: &str) -> Self {
        if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else {
            Backend::Postgres
        }
    }
}

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("migrations/postgres");

/// Opens the pool. For SQLite the parent directory is created, WAL is turned
/// on and foreign keys are enforced on every connection.
pub async fn connect(url: &str) -> Result<Db, sqlx::Error> {
    sqlx::any::install_default_drivers();
    let backend = Backend::of_url(url);
    if backend == Backend::Sqlite {
        ensure_sqlite_dir(url)?;
    }
    let options = AnyConnectOptions::from_str(url)?.disable_statement_logging();
    let max_connections = match backend {
        Backend::Sqlite => 8,
        Backend::Postgres => 16,
    };
    // SQLite waits out another writer's lock; a Postgres server that does
    // not answer within a few seconds is down, and requests should say so
    // (503) rather than hang for as long as it stays down.
    let acquire_timeout = match backend {
        Backend::Sqlite => Duration::from_secs(10),
        Backend::Postgres => Duration::from_secs(3),
    };
    AnyPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(acquire_timeout)
        .after_connect(move |conn, _meta| {
            Box::pin(async move {
                if backend == Backend::Sqlite {
                    conn.execute(
                        "PRAGMA journal_mode = WAL; PRAGMA foreign_keys = ON; \
                         PRAGMA busy_timeout = 10000; PRAGMA synchronous = NORMAL;",
                    )
                    .await?;
                }
                Ok(())
            })
        })
        .connect_with(options)
        .await
}

fn migrations(backend: Backend) -> &'static sqlx::migrate::Migrator {
    match backend {
        Backend::Sqlite => &SQLITE_MIGRATIONS,
        Backend::Postgres => &POSTGRES_MIGRATIONS,
    }
}

/// Applies every migration not yet applied, checking the applied ones
/// are unchanged (`keyward migrate`).
pub async fn migrate(db: &Db, backend: Backend) -> Result<(), sqlx::migrate::MigrateError> {
    migrations(backend).run(db).await
}

/// Like `migrate`, but touches nothing when every migration is applied
/// already. A production database is migrated by its owner role
/// (`keyward migrate`), and `keyward serve` runs as a role that may not
/// create tables: even a `CREATE TABLE IF NOT EXISTS` needs that right.
pub async fn migrate_if_behind(
    db: &Db,
    backend: Backend,
) -> Result<(), sqlx::migrate::MigrateError> {
    let migrator = migrations(backend);
    let applied: Vec<i64> =
        sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success = TRUE")
            .fetch_all(db)
            .await
            .unwrap_or_default();
    let behind = migrator
        .iter()
        .filter(|migration| !migration.migration_type.is_down_migration())
        .any(|migration| !applied.contains(&migration.version));
    if behind {
        migrator.run(db).await?;
    }
    Ok(())
}

/// On SQLite, checkpoints the WAL every second from a connection of the
/// pool (a passive checkpoint never blocks writers), so the books writer,
/// whose connection does not checkpoint, never pays for the file sync on
/// a call's path. Nothing to do on Postgres.
pub fn checkpoint_in_background(db: Db, backend: Backend) {
    if backend != Backend::Sqlite {
        return;
    }
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tick.tick().await;
            if db.is_closed() {
                return;
            }
            if let Err(err) = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
                .execute(&db)
                .await
            {
                tracing::warn!(error = %err, "could not checkpoint the SQLite WAL");
            }
        }
    });
}

/// Ids as a comma-separated SQL list, for `IN (…)` over many rows in one
/// statement. Only for integers keyward chose or read back: nothing a
/// client wrote reaches SQL this way.
pub(crate) fn integer_list(ids: &[i64]) -> String {
    ids.iter().map(i64::to_string).collect::<Vec<_>>().join(",")
}

/// Liveness check for `/healthz`.
pub async fn ping(db: &Db) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT 1").execute(db).await.map(|_| ())
}

fn ensure_sqlite_dir(url: &str) -> Result<(), sqlx::Error> {
    let path = url.trim_start_matches("sqlite:").trim_start_matches("//");
    let path = path.split('?').next().unwrap_or_default();
    if path.is_empty() || path == ":memory:" {
        return Ok(());
    }
    if let Some(dir) = Path::new(path)
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
    {
        std::fs::create_dir_all(dir).map_err(sqlx::Error::Io)?;
    }
    Ok(())
}

/// True when `err` says the database could not be reached (server down or
/// restarting, connection cut, pool out of time), as opposed to a query it
/// refused. Such a failure changed nothing and is worth retrying later.
pub fn is_unreachable(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        // SQLSTATE class 08 (connection exception; not 08P01, a protocol
        // violation, which a retry repeats) and 57P01–57P03 (the server is
        // shutting down, crashed or not yet accepting).
        sqlx::Error::Database(db) => db.code().is_some_and(|code| {
            (code.starts_with("08") && code != "08P01") || code.starts_with("57P0")
        }),
        _ => false,
    }
}

/// Reads a column holding one of `model::domain`'s words: a word the type
/// does not know is a decode error, never a guess.
pub(crate) fn word<T>(row: &sqlx::any::AnyRow, column: &str) -> Result<T, sqlx::Error>
where
    T: FromStr<Err = crate::model::domain::UnknownWord>,
{
    use sqlx::Row;
    let text: String = row.try_get(column)?;
    text.parse().map_err(|err| sqlx::Error::ColumnDecode {
        index: column.to_owned(),
        source: Box::new(err),
    })
}

/// `word` for a column that may be NULL.
pub(crate) fn optional_word<T>(
    row: &sqlx::any::AnyRow,
    column: &str,
) -> Result<Option<T>, sqlx::Error>
where
    T: FromStr<Err = crate::model::domain::UnknownWord>,
{
    use sqlx::Row;
    let text: Option<String> = row.try_get(column)?;
    text.map(|text| text.parse())
        .transpose()
        .map_err(|err| sqlx::Error::ColumnDecode {
            index: column.to_owned(),
            source: Box::new(err),
        })
}

/// True when `err` is a unique-constraint violation (both engines).
pub fn is_unique_violation(err: &sqlx::Error) -> bool {
    matches!(err, sqlx::Error::Database(db) if db.is_unique_violation())
}

/// `YYYY-MM-DD` (UTC) of a unix-milliseconds time.
pub fn format_day(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(ms / 1000)
        .map(|t| format!("{:04}-{:02}-{:02}", t.year(), u8::from(t.month()), t.day()))
        .unwrap_or_default()
}

/// `YYYY-MM-DD HH:MM UTC` of a unix-milliseconds time.
pub fn format_time(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(ms / 1000)
        .map(|t| {
            format!(
                "{:04}-{:02}-{:02} {:02}:{:02} UTC",
                t.year(),
                u8::from(t.month()),
                t.day(),
                t.hour(),
                t.minute()
            )
        })
        .unwrap_or_default()
}
