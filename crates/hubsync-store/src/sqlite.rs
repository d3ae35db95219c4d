//! The SQLite backend: one file, WAL mode so that the app reads while hubsync writes, a busy
//! timeout so that concurrent writers wait instead of failing, and `BEGIN IMMEDIATE` for every
//! hubsync write transaction (SQLite has one writer).

use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

use crate::db::SqliteDb;
use crate::error::StoreError;
use crate::sql_store::SqlStore;

/// The store on SQLite.
pub type SqliteStore = SqlStore<SqliteDb>;

/// How long a writer waits for the lock before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

impl SqlStore<SqliteDb> {
    /// Opens (with `?mode=rwc`: creates) the database at a `sqlite://path` URL and brings its
    /// schema up to date.
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::from_str(url)?
            .journal_mode(SqliteJournalMode::Wal)
            .busy_timeout(BUSY_TIMEOUT)
            .foreign_keys(true)
            .synchronous(SqliteSynchronous::Normal);
        // An in-memory database exists once per connection: keep to one.
        let in_memory = url.contains(":memory:") || url.contains("mode=memory");
        let pool = SqlitePoolOptions::new()
            .max_connections(if in_memory { 1 } else { 4 })
            .connect_with(options)
            .await?;
        crate::migrations::sqlite().run(&pool).await?;
        tracing::info!(backend = "sqlite", "store opened");
        Ok(SqlStore::new(SqliteDb { pool }))
    }

    /// The connection pool, for SQL the app would run itself (tests, examples, benchmarks).
    pub fn pool(&self) -> &sqlx::SqlitePool {
        &self.db.pool
    }
}
