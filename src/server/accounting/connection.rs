//! The books writer's connection to the database, and how it waits out
//! an outage.

use crate::server::db::{self, Db};

/// `work`, failing as unreachable after `limit`.
pub(super) async fn within<T>(
    limit: std::time::Duration,
    work: impl std::future::Future<Output = Result<T, sqlx::Error>>,
) -> Result<T, sqlx::Error> {
    tokio::time::timeout(limit, work)
        .await
        .unwrap_or(Err(sqlx::Error::PoolTimedOut))
}

/// The writer's own connection, kept from batch to batch: SQLite keeps a
/// connection's page cache only while no other connection writes, and its
/// statements stay prepared. A connection that failed is replaced.
///
/// While the database cannot be reached, the writer does not ask it again
/// before a backoff ends (a fraction of a second, doubling up to
/// `MAX_OUTAGE_BACKOFF`): calls asking to be admitted meanwhile are told at
/// once that it is unavailable instead of each waiting out a connection
/// attempt, and finished calls wait in the queue.
pub(super) struct WriterConnection {
    pub db: Db,
    conn: Option<sqlx::pool::PoolConnection<sqlx::Any>>,
    outage: Option<Outage>,
}

#[derive(Clone, Copy)]
struct Outage {
    retry_at: tokio::time::Instant,
    backoff: std::time::Duration,
}

pub(super) const FIRST_OUTAGE_BACKOFF: std::time::Duration = std::time::Duration::from_millis(200);
const MAX_OUTAGE_BACKOFF: std::time::Duration = std::time::Duration::from_secs(1);

impl WriterConnection {
    pub(super) fn new(db: Db) -> Self {
        Self {
            db,
            conn: None,
            outage: None,
        }
    }

    /// The connection, opened again if the last one failed. On SQLite it
    /// never checkpoints the WAL itself (`db::checkpoint_in_background`
    /// does): a checkpoint syncs the file, and calls waiting to be admitted
    /// would wait for it. Fails at once, as timed out, while the database
    /// is known to be down and its backoff has not ended.
    pub async fn get(&mut self) -> Result<&mut sqlx::AnyConnection, sqlx::Error> {
        if self.is_down() {
            return Err(sqlx::Error::PoolTimedOut);
        }
        if self.conn.is_none() {
            let mut conn = self.db.acquire().await.inspect_err(|err| self.note(err))?;
            if conn.backend_name() == "SQLite" {
                sqlx::query("PRAGMA wal_autocheckpoint = 0")
                    .execute(&mut *conn)
                    .await?;
            }
            self.conn = Some(conn);
            if self.outage.take().is_some() {
                tracing::info!("the database answers again");
            }
        }
        let conn = self.conn.as_mut().expect("opened just above");
        Ok(&mut **conn)
    }

    /// Forgets a connection that failed with `err`.
    pub fn failed(&mut self, err: &sqlx::Error) {
        self.conn = None;
        self.note(err);
    }

    /// True while the database is known to be down and not yet due to be
    /// asked again.
    pub fn is_down(&self) -> bool {
        self.retry_at()
            .is_some_and(|at| tokio::time::Instant::now() < at)
    }

    /// Ends the backoff: the next `get` asks the database (a stop's last
    /// chance to write).
    pub fn retry_now(&mut self) {
        if let Some(outage) = &mut self.outage {
            outage.retry_at = tokio::time::Instant::now();
        }
    }

    /// When the database is next asked, if it is down.
    pub fn retry_at(&self) -> Option<tokio::time::Instant> {
        self.outage.map(|outage| outage.retry_at)
    }

    /// Starts or lengthens the backoff after a real attempt failed (the
    /// error `get` makes up while down changes nothing).
    fn note(&mut self, err: &sqlx::Error) {
        if !db::is_unreachable(err) || self.is_down() {
            return;
        }
        if self.outage.is_none() {
            tracing::error!(error = %err, "the database does not answer: admissions are refused and ledger rows kept until it does");
        }
        let backoff = self.outage.map_or(FIRST_OUTAGE_BACKOFF, |outage| {
            (outage.backoff * 2).min(MAX_OUTAGE_BACKOFF)
        });
        self.outage = Some(Outage {
            retry_at: tokio::time::Instant::now() + backoff,
            backoff,
        });
    }
}
