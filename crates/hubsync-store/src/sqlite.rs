//! The SQLite backend: one file, WAL mode so that the app reads while hubsync writes, a busy
//! timeout so that concurrent writers wait instead of failing, and `BEGIN IMMEDIATE` for every
//! hubsync write transaction (SQLite has one writer).
//!
//! hubsync's own statements run on connections of its own (rusqlite), on the calling thread:
//! a SQLite statement takes microseconds, and handing each statement and each row to a driver
//! thread (what sqlx's SQLite driver does) cost more than the work itself. sqlx still runs the
//! embedded migrations, and its pool is what [`SqlStore::pool`] offers for SQL the app would
//! run itself.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

use crate::db::{SqliteConns, SqliteDb};
use crate::error::StoreError;
use crate::sql_store::SqlStore;

/// The store on SQLite.
pub type SqliteStore = SqlStore<SqliteDb>;

/// How long a writer waits for the lock before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// hubsync's reader connections (reads run to completion on the calling thread, so two runtime
/// threads need little more than two).
const READERS: usize = 4;

impl SqlStore<SqliteDb> {
    /// Opens (with `?mode=rwc`: creates) the database file at a `sqlite://path` URL and brings
    /// its schema up to date. An in-memory database is refused: hubsync and the app must share
    /// the database, and an in-memory one exists once per connection.
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        if url.contains(":memory:") || url.contains("mode=memory") {
            return Err(StoreError::UnsupportedUrl(
                "sqlite in-memory (hubsync and the app share the database: give a file, a temporary one will do)"
                    .to_owned(),
            ));
        }
        let options = SqliteConnectOptions::from_str(url)?
            .journal_mode(SqliteJournalMode::Wal)
            .busy_timeout(BUSY_TIMEOUT)
            .foreign_keys(true)
            .synchronous(SqliteSynchronous::Normal);
        let path = options.get_filename().to_owned();
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await?;
        crate::migrations::sqlite().run(&pool).await?;
        let conns = SqliteConns::open(&path, READERS, BUSY_TIMEOUT)?;
        tracing::info!(backend = "sqlite", "store opened");
        Ok(SqlStore::new(SqliteDb {
            pool,
            conns: Arc::new(conns),
        }))
    }

    /// A connection pool of the app's kind (sqlx), for SQL the app would run itself (tests,
    /// examples, benchmarks). hubsync's own statements use connections of their own.
    pub fn pool(&self) -> &sqlx::SqlitePool {
        &self.db.pool
    }
}
