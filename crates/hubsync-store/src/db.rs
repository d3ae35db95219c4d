//! The thin layer under the shared store logic: one way to run a statement and read its rows
//! on either database, so that the logic in [`crate::sql_store`] is written once.
//!
//! Rows come back as [`Row`]s of dynamically typed [`Cell`]s; arguments go in as typed
//! [`Arg`]s (PostgreSQL needs a typed `NULL`). SQL is either a `&'static str` or a string built
//! by [`crate::schema`] from whitelisted identifiers, with every value bound as a parameter.
//! Placeholders are `$1, $2, …` on both backends.

use std::sync::Arc;

use async_trait::async_trait;
use serde_json::Value;
use sqlx::{AssertSqlSafe, Column, Row as _, TypeInfo, ValueRef};

use crate::error::StoreError;

/// Which SQL dialect a backend speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// SQLite 3.
    Sqlite,
    /// PostgreSQL.
    Postgres,
}

/// A SQL statement: static text, or text built from whitelisted identifiers.
#[derive(Debug, Clone)]
pub enum Sql {
    /// Hand-written SQL.
    Static(&'static str),
    /// SQL assembled by [`crate::schema`] from column names it validated; values are bound.
    Built(String),
}

impl Sql {
    /// The statement's text.
    pub fn text(&self) -> &str {
        match self {
            Sql::Static(s) => s,
            Sql::Built(s) => s,
        }
    }
}

impl From<&'static str> for Sql {
    fn from(sql: &'static str) -> Self {
        Sql::Static(sql)
    }
}

/// A bound parameter, typed even when `NULL`.
#[derive(Debug, Clone, PartialEq)]
pub enum Arg {
    /// A 64-bit integer.
    Int(Option<i64>),
    /// A float.
    Real(Option<f64>),
    /// Text.
    Text(Option<String>),
    /// JSON (TEXT on SQLite, JSONB on PostgreSQL).
    Json(Option<Value>),
}

impl From<i64> for Arg {
    fn from(v: i64) -> Self {
        Arg::Int(Some(v))
    }
}
impl From<Option<i64>> for Arg {
    fn from(v: Option<i64>) -> Self {
        Arg::Int(v)
    }
}
impl From<&str> for Arg {
    fn from(v: &str) -> Self {
        Arg::Text(Some(v.to_owned()))
    }
}
impl From<String> for Arg {
    fn from(v: String) -> Self {
        Arg::Text(Some(v))
    }
}
impl From<Option<String>> for Arg {
    fn from(v: Option<String>) -> Self {
        Arg::Text(v)
    }
}

/// A value read back.
#[derive(Debug, Clone, Default, PartialEq)]
pub enum Cell {
    /// `NULL`.
    #[default]
    Null,
    /// An integer.
    Int(i64),
    /// A float.
    Real(f64),
    /// Text (on SQLite, JSON columns read as text too).
    Text(String),
    /// JSON (PostgreSQL JSONB).
    Json(Value),
}

/// One result row: column names shared by the result set, and the cells.
#[derive(Debug, Clone)]
pub struct Row {
    names: Arc<[String]>,
    cells: Vec<Cell>,
}

impl Row {
    /// A row from a JSON object (`{"column": value, …}`), as SQLite's `json_object` builds it.
    pub fn from_json(value: Value) -> Result<Row, StoreError> {
        let Value::Object(object) = value else {
            return Err(StoreError::corrupt(
                "json row",
                "",
                "expected a json object",
            ));
        };
        let mut names = Vec::with_capacity(object.len());
        let mut cells = Vec::with_capacity(object.len());
        for (name, value) in object {
            names.push(name);
            cells.push(match value {
                Value::Null => Cell::Null,
                Value::Bool(b) => Cell::Int(i64::from(b)),
                Value::Number(n) => match n.as_i64() {
                    Some(i) => Cell::Int(i),
                    None => Cell::Real(n.as_f64().unwrap_or(f64::NAN)),
                },
                Value::String(s) => Cell::Text(s),
                other => Cell::Json(other),
            });
        }
        Ok(Row {
            names: names.into(),
            cells,
        })
    }

    /// The cell of a column; `Null` if the query has no such column.
    pub fn cell(&self, name: &str) -> &Cell {
        self.names
            .iter()
            .position(|n| n == name)
            .and_then(|i| self.cells.get(i))
            .unwrap_or(&Cell::Null)
    }

    /// Moves a cell out.
    pub fn take(&mut self, name: &str) -> Cell {
        match self.names.iter().position(|n| n == name) {
            Some(i) => self
                .cells
                .get_mut(i)
                .map(std::mem::take)
                .unwrap_or(Cell::Null),
            None => Cell::Null,
        }
    }

    /// An integer column (NULL as `None`).
    pub fn opt_i64(&self, table: &'static str, name: &str) -> Result<Option<i64>, StoreError> {
        match self.cell(name) {
            Cell::Null => Ok(None),
            Cell::Int(v) => Ok(Some(*v)),
            Cell::Real(v) if v.fract() == 0.0 => Ok(Some(*v as i64)),
            Cell::Text(s) => s.parse().map(Some).map_err(|_| {
                StoreError::corrupt(table, name, format!("expected an integer, found `{s}`"))
            }),
            other => Err(StoreError::corrupt(
                table,
                name,
                format!("expected an integer, found {other:?}"),
            )),
        }
    }

    /// A non-null integer column.
    pub fn i64(&self, table: &'static str, name: &str) -> Result<i64, StoreError> {
        self.opt_i64(table, name)?
            .ok_or_else(|| StoreError::corrupt(table, name, "unexpected null"))
    }

    /// A text column (NULL as `None`).
    pub fn opt_text(&self, table: &'static str, name: &str) -> Result<Option<String>, StoreError> {
        match self.cell(name) {
            Cell::Null => Ok(None),
            Cell::Text(s) => Ok(Some(s.clone())),
            Cell::Int(v) => Ok(Some(v.to_string())),
            other => Err(StoreError::corrupt(
                table,
                name,
                format!("expected text, found {other:?}"),
            )),
        }
    }

    /// A non-null text column.
    pub fn text(&self, table: &'static str, name: &str) -> Result<String, StoreError> {
        self.opt_text(table, name)?
            .ok_or_else(|| StoreError::corrupt(table, name, "unexpected null"))
    }

    /// A JSON column (JSONB, or JSON text on SQLite); NULL as `None`.
    pub fn opt_json(&self, table: &'static str, name: &str) -> Result<Option<Value>, StoreError> {
        match self.cell(name) {
            Cell::Null => Ok(None),
            Cell::Json(v) => Ok(Some(v.clone())),
            Cell::Text(s) => serde_json::from_str(s)
                .map(Some)
                .map_err(|e| StoreError::corrupt(table, name, format!("invalid json: {e}"))),
            other => Err(StoreError::corrupt(
                table,
                name,
                format!("expected json, found {other:?}"),
            )),
        }
    }

    /// A JSON column deserialised straight into `T` (from the text on SQLite, with no
    /// intermediate [`Value`]); NULL, or JSON `null`, as `None`.
    pub fn opt_de<T: serde::de::DeserializeOwned>(
        &self,
        table: &'static str,
        name: &str,
    ) -> Result<Option<T>, StoreError> {
        let invalid =
            |e: serde_json::Error| StoreError::corrupt(table, name, format!("invalid json: {e}"));
        match self.cell(name) {
            Cell::Null | Cell::Json(Value::Null) => Ok(None),
            Cell::Text(s) if s == "null" => Ok(None),
            Cell::Text(s) => serde_json::from_str(s).map(Some).map_err(invalid),
            Cell::Json(v) => T::deserialize(v).map(Some).map_err(invalid),
            other => Err(StoreError::corrupt(
                table,
                name,
                format!("expected json, found {other:?}"),
            )),
        }
    }

    /// A JSON column, `null` when NULL.
    pub fn json(&self, table: &'static str, name: &str) -> Result<Value, StoreError> {
        Ok(self.opt_json(table, name)?.unwrap_or(Value::Null))
    }
}

/// What the shared logic needs from a database. Sealed: implemented here for SQLite and
/// PostgreSQL only.
#[async_trait]
pub trait Backend: Send + Sync + std::fmt::Debug + 'static {
    /// The dialect, for the few statements that differ.
    const DIALECT: Dialect;
    /// The backend's name.
    const NAME: &'static str;
    /// A write transaction.
    type Tx: Send;

    /// Begins a write transaction (on SQLite `BEGIN IMMEDIATE`: the one writer).
    async fn begin(&self) -> Result<Self::Tx, StoreError>;
    /// Begins a transaction for the lease table: on PostgreSQL on a small pool of its own, so
    /// that queue work holding every connection of the main pool never delays a renewal.
    async fn begin_lease(&self) -> Result<Self::Tx, StoreError> {
        self.begin().await
    }
    /// Commits it.
    async fn commit(tx: Self::Tx) -> Result<(), StoreError>;
    /// Runs a statement in the transaction; returns the rows affected.
    async fn exec(tx: &mut Self::Tx, sql: Sql, args: Vec<Arg>) -> Result<u64, StoreError>;
    /// Runs a query in the transaction.
    async fn fetch(tx: &mut Self::Tx, sql: Sql, args: Vec<Arg>) -> Result<Vec<Row>, StoreError>;
    /// Runs a read-only query outside any transaction.
    async fn read(&self, sql: Sql, args: Vec<Arg>) -> Result<Vec<Row>, StoreError>;
    /// [`Backend::read`] for a query whose cost the caller's filters decide (a filter on an
    /// unindexed column scans the table). On SQLite, whose statements otherwise run on the
    /// calling runtime thread, it runs on the blocking pool, so that it cannot hold up the
    /// threads that receive webhooks; that hop costs more than a bounded read itself.
    async fn read_unbounded(&self, sql: Sql, args: Vec<Arg>) -> Result<Vec<Row>, StoreError> {
        self.read(sql, args).await
    }
    /// Marks the transaction as hubsync's own: the capture triggers skip its writes.
    async fn start_apply(tx: &mut Self::Tx) -> Result<(), StoreError>;
    /// Ends the marking (before commit).
    async fn end_apply(tx: &mut Self::Tx) -> Result<(), StoreError>;
    /// Waits for an outbox notification, up to `timeout`.
    async fn wait_for_outbox(&self, timeout: std::time::Duration) -> Result<bool, StoreError>;
    /// Closes the pool.
    async fn close(&self);
}

// ---------------------------------------------------------------------------------------------
// SQLite
// ---------------------------------------------------------------------------------------------

/// hubsync's SQLite connections: one writer, a few readers, each driven directly on the calling
/// task's thread (rusqlite). SQLite's statements run in microseconds, so a hop to a driver
/// thread per statement and per row (what an async driver does) would cost more than the work.
///
/// Writers are serialised by an async mutex, so hubsync's own transactions queue without
/// blocking a runtime thread; the app's writes, from its own connections, are waited for with
/// short async back-offs at `BEGIN IMMEDIATE`. Readers never wait in WAL mode. The sqlx pool is
/// kept for the embedded migrations and for SQL the app would run itself.
#[derive(Debug, Clone)]
pub struct SqliteDb {
    pub(crate) pool: sqlx::SqlitePool,
    pub(crate) conns: Arc<SqliteConns>,
}

/// The connections behind [`SqliteDb`].
pub(crate) struct SqliteConns {
    writer: Arc<tokio::sync::Mutex<rusqlite::Connection>>,
    readers: Vec<std::sync::Mutex<rusqlite::Connection>>,
    next_reader: std::sync::atomic::AtomicUsize,
    /// How long `BEGIN IMMEDIATE` keeps trying while another connection writes.
    busy_timeout: std::time::Duration,
    /// Set by [`Backend::close`]: every later statement fails.
    closed: std::sync::atomic::AtomicBool,
}

impl std::fmt::Debug for SqliteConns {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteConns")
            .field("readers", &self.readers.len())
            .finish_non_exhaustive()
    }
}

/// Statements each connection keeps prepared.
const STATEMENT_CACHE: usize = 256;

/// Copies the write-ahead log back into the database file on a thread of its own, so that the
/// writer's commits never stop to do it.
///
/// SQLite's default (`wal_autocheckpoint`) runs the checkpoint inside whichever commit takes
/// the log past 1,000 pages: that commit writes and syncs the database file before it returns.
/// Here the writer's commit hook only wakes this thread at that size, which runs a PASSIVE
/// checkpoint (it never blocks the writer or a reader) on its own connection. If the log still
/// grows to [`Checkpointer::HARD_PAGES`] (the thread cannot keep up, or is gone), the writer
/// checkpoints in its commit as SQLite would. The app's own connections keep SQLite's default.
struct Checkpointer;

impl Checkpointer {
    /// Log size (pages) at which the thread is woken: SQLite's default auto-checkpoint size.
    const SOFT_PAGES: i32 = 1_000;
    /// Log size (pages) at which the writer checkpoints itself.
    const HARD_PAGES: i32 = 16_000;

    /// Starts the thread on `conn` and hooks `writer`'s commits to it. The thread ends when the
    /// writer's hook is dropped (the writer closes, or [`Checkpointer::stop`]).
    fn start(
        conn: rusqlite::Connection,
        writer: &mut rusqlite::Connection,
    ) -> Result<(), StoreError> {
        let (wake, woken) = std::sync::mpsc::sync_channel::<()>(1);
        std::thread::Builder::new()
            .name("hubsync-sqlite-checkpoint".to_owned())
            .spawn(move || {
                while woken.recv().is_ok() {
                    if let Err(error) =
                        conn.wal_checkpoint_v2(None::<&str>, rusqlite::wal::CheckpointMode::PASSIVE)
                    {
                        tracing::debug!(%error, "background WAL checkpoint did not run");
                    }
                }
            })
            .map_err(|e| StoreError::Worker(format!("starting the WAL checkpointer: {e}")))?;
        writer.wal_hook(Some(move |wal: &mut rusqlite::hooks::Wal, pages: i32| {
            if pages >= Self::HARD_PAGES {
                wal.checkpoint()?;
            } else if pages >= Self::SOFT_PAGES {
                // Full: a wake-up is already pending.
                let _ = wake.try_send(());
            }
            Ok(())
        }))?;
        Ok(())
    }

    /// Ends the thread: drops the writer's hook, and with it the thread's wake-up channel.
    fn stop(writer: &mut rusqlite::Connection) {
        let _ = writer.wal_hook(None::<fn(&mut rusqlite::hooks::Wal, i32) -> rusqlite::Result<()>>);
    }
}

impl SqliteConns {
    /// Opens the writer and `readers` reader connections to the database file at `path`.
    pub(crate) fn open(
        path: &std::path::Path,
        readers: usize,
        busy_timeout: std::time::Duration,
    ) -> Result<Self, StoreError> {
        let open = |busy: std::time::Duration| -> Result<rusqlite::Connection, StoreError> {
            let conn = rusqlite::Connection::open(path)?;
            conn.busy_timeout(busy)?;
            conn.execute_batch(
                "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;",
            )?;
            conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
            Ok(conn)
        };
        // The writer never sleeps inside SQLite (that would block a runtime thread): a busy
        // `BEGIN IMMEDIATE` is retried with async back-offs instead.
        let mut writer = open(std::time::Duration::ZERO)?;
        Checkpointer::start(open(busy_timeout)?, &mut writer)?;
        let readers = (0..readers.max(1))
            .map(|_| open(busy_timeout).map(std::sync::Mutex::new))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(SqliteConns {
            writer: Arc::new(tokio::sync::Mutex::new(writer)),
            readers,
            next_reader: std::sync::atomic::AtomicUsize::new(0),
            busy_timeout,
            closed: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// Runs `f` on a free reader connection (statements run to completion without awaiting, so
    /// a reader is held for one statement only and is almost never contended).
    fn with_reader<T>(
        &self,
        f: impl FnOnce(&rusqlite::Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        self.check_open()?;
        let n = self.readers.len();
        let start = self
            .next_reader
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        for i in 0..n {
            if let Ok(conn) = self.readers[(start + i) % n].try_lock() {
                return f(&conn);
            }
        }
        // All busy: wait for one (a statement's time at most). A poisoned lock only means a
        // panic while it was held; the connection itself is still usable.
        let conn = self.readers[start % n]
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        f(&conn)
    }

    fn check_open(&self) -> Result<(), StoreError> {
        if self.closed.load(std::sync::atomic::Ordering::Acquire) {
            return Err(StoreError::Closed);
        }
        Ok(())
    }
}

/// A write transaction on the writer connection; rolled back if dropped before commit.
pub struct SqliteTx {
    conn: tokio::sync::OwnedMutexGuard<rusqlite::Connection>,
    open: bool,
}

impl std::fmt::Debug for SqliteTx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteTx")
            .field("open", &self.open)
            .finish()
    }
}

impl Drop for SqliteTx {
    fn drop(&mut self) {
        if self.open {
            // Nothing to report to: the work is abandoned either way, and the next BEGIN on
            // this connection would fail loudly if the rollback had not happened.
            let _ = self.conn.execute_batch("ROLLBACK");
        }
    }
}

/// Binds `args` to `stmt`. Placeholders `$n` / `?n` take the n-th argument wherever they stand
/// (SQLite numbers named parameters by first appearance, not by their digits); bare `?` take
/// the arguments in order.
fn sqlite_bind(stmt: &mut rusqlite::Statement<'_>, args: &[Arg]) -> Result<(), StoreError> {
    let mut positional = 0;
    for index in 1..=stmt.parameter_count() {
        let arg = match stmt.parameter_name(index) {
            None => {
                positional += 1;
                args.get(positional - 1)
            }
            Some(name) => name
                .strip_prefix(['$', '?'])
                .and_then(|digits| digits.parse::<usize>().ok())
                .and_then(|n| n.checked_sub(1))
                .and_then(|n| args.get(n)),
        };
        let Some(arg) = arg else {
            return Err(StoreError::Sqlite(rusqlite::Error::InvalidParameterCount(
                index,
                args.len(),
            )));
        };
        match arg {
            Arg::Int(v) => stmt.raw_bind_parameter(index, v)?,
            Arg::Real(v) => stmt.raw_bind_parameter(index, v)?,
            Arg::Text(v) => stmt.raw_bind_parameter(index, v)?,
            Arg::Json(v) => stmt.raw_bind_parameter(index, v.as_ref().map(Value::to_string))?,
        }
    }
    Ok(())
}

/// Prepares (from the connection's cache) and runs a query, reading every row.
fn sqlite_fetch(
    conn: &rusqlite::Connection,
    sql: &Sql,
    args: &[Arg],
) -> Result<Vec<Row>, StoreError> {
    let mut stmt = conn.prepare_cached(sql.text())?;
    sqlite_bind(&mut stmt, args)?;
    let names: Arc<[String]> = stmt.column_names().map(str::to_owned).collect();
    let width = names.len();
    let mut rows = stmt.raw_query();
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        let mut cells = Vec::with_capacity(width);
        for i in 0..width {
            cells.push(match row.get_ref(i)? {
                rusqlite::types::ValueRef::Null => Cell::Null,
                rusqlite::types::ValueRef::Integer(v) => Cell::Int(v),
                rusqlite::types::ValueRef::Real(v) => Cell::Real(v),
                rusqlite::types::ValueRef::Text(bytes) | rusqlite::types::ValueRef::Blob(bytes) => {
                    Cell::Text(String::from_utf8(bytes.to_vec()).map_err(|_| {
                        StoreError::corrupt("sqlite row", &names[i], "text is not utf-8")
                    })?)
                }
            });
        }
        out.push(Row {
            names: names.clone(),
            cells,
        });
    }
    Ok(out)
}

/// Prepares and runs a statement; returns the rows it changed.
fn sqlite_exec(conn: &rusqlite::Connection, sql: &Sql, args: &[Arg]) -> Result<u64, StoreError> {
    let mut stmt = conn.prepare_cached(sql.text())?;
    sqlite_bind(&mut stmt, args)?;
    if stmt.column_count() == 0 {
        return Ok(stmt.raw_execute()? as u64);
    }
    // A statement that returns rows (`… RETURNING`): step through them.
    let mut rows = stmt.raw_query();
    while rows.next()?.is_some() {}
    drop(rows);
    Ok(conn.changes())
}

fn is_busy(error: &rusqlite::Error) -> bool {
    matches!(
        error.sqlite_error_code(),
        Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
    )
}

#[async_trait]
impl Backend for SqliteDb {
    const DIALECT: Dialect = Dialect::Sqlite;
    const NAME: &'static str = "sqlite";
    type Tx = SqliteTx;

    async fn begin(&self) -> Result<Self::Tx, StoreError> {
        self.conns.check_open()?;
        let conn = self.conns.writer.clone().lock_owned().await;
        let deadline = tokio::time::Instant::now() + self.conns.busy_timeout;
        let mut pause = std::time::Duration::from_micros(200);
        loop {
            match conn.execute_batch("BEGIN IMMEDIATE") {
                Ok(()) => return Ok(SqliteTx { conn, open: true }),
                // Another connection (the app's) is writing: wait for it without blocking.
                Err(e) if is_busy(&e) && tokio::time::Instant::now() < deadline => {
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(std::time::Duration::from_millis(20));
                }
                Err(e) => return Err(e.into()),
            }
        }
    }
    async fn commit(mut tx: Self::Tx) -> Result<(), StoreError> {
        let result = tx.conn.execute_batch("COMMIT");
        if result.is_ok() {
            tx.open = false;
        }
        Ok(result?)
    }
    // Statements run to completion on the calling thread; each one spends from the task's
    // cooperative budget, so a long transaction still lets the runtime's other tasks in.
    async fn exec(tx: &mut Self::Tx, sql: Sql, args: Vec<Arg>) -> Result<u64, StoreError> {
        tokio::task::consume_budget().await;
        sqlite_exec(&tx.conn, &sql, &args)
    }
    async fn fetch(tx: &mut Self::Tx, sql: Sql, args: Vec<Arg>) -> Result<Vec<Row>, StoreError> {
        tokio::task::consume_budget().await;
        sqlite_fetch(&tx.conn, &sql, &args)
    }
    async fn read(&self, sql: Sql, args: Vec<Arg>) -> Result<Vec<Row>, StoreError> {
        tokio::task::consume_budget().await;
        self.conns
            .with_reader(|conn| sqlite_fetch(conn, &sql, &args))
    }
    async fn read_unbounded(&self, sql: Sql, args: Vec<Arg>) -> Result<Vec<Row>, StoreError> {
        let conns = self.conns.clone();
        tokio::task::spawn_blocking(move || {
            conns.with_reader(|conn| sqlite_fetch(conn, &sql, &args))
        })
        .await
        .map_err(|e| StoreError::Worker(e.to_string()))?
    }
    async fn start_apply(tx: &mut Self::Tx) -> Result<(), StoreError> {
        sqlite_exec(
            &tx.conn,
            &Sql::Static("INSERT INTO _hubsync_apply_guard (id) VALUES (1) ON CONFLICT DO NOTHING"),
            &[],
        )?;
        Ok(())
    }
    async fn end_apply(tx: &mut Self::Tx) -> Result<(), StoreError> {
        sqlite_exec(
            &tx.conn,
            &Sql::Static("DELETE FROM _hubsync_apply_guard"),
            &[],
        )?;
        Ok(())
    }
    async fn wait_for_outbox(&self, timeout: std::time::Duration) -> Result<bool, StoreError> {
        // SQLite has no cross-process notification; the caller polls at its timeout.
        tokio::time::sleep(timeout).await;
        Ok(false)
    }
    async fn close(&self) {
        self.conns
            .closed
            .store(true, std::sync::atomic::Ordering::Release);
        Checkpointer::stop(&mut *self.conns.writer.lock().await);
        self.pool.close().await;
    }
}

// ---------------------------------------------------------------------------------------------
// PostgreSQL
// ---------------------------------------------------------------------------------------------

/// The PostgreSQL connection pools (queue work; leases), and the outbox notifications it
/// listens to.
#[derive(Debug, Clone)]
pub struct PgDb {
    pub(crate) pool: sqlx::PgPool,
    /// Lease acquisitions, renewals and releases only.
    pub(crate) lease_pool: sqlx::PgPool,
    pub(crate) listener: Arc<crate::postgres::OutboxListener>,
}

fn pg_query(
    sql: Sql,
    args: Vec<Arg>,
) -> sqlx::query::Query<'static, sqlx::Postgres, sqlx::postgres::PgArguments> {
    let mut q = match sql {
        Sql::Static(s) => sqlx::query(s),
        Sql::Built(s) => sqlx::query(AssertSqlSafe(s)),
    };
    for arg in args {
        q = match arg {
            Arg::Int(v) => q.bind(v),
            Arg::Real(v) => q.bind(v),
            Arg::Text(v) => q.bind(v),
            Arg::Json(v) => q.bind(v),
        };
    }
    q
}

fn pg_rows(rows: Vec<sqlx::postgres::PgRow>) -> Result<Vec<Row>, StoreError> {
    let Some(first) = rows.first() else {
        return Ok(Vec::new());
    };
    let names: Arc<[String]> = first
        .columns()
        .iter()
        .map(|c| c.name().to_owned())
        .collect();
    let mut out = Vec::with_capacity(rows.len());
    for row in &rows {
        let mut cells = Vec::with_capacity(names.len());
        for i in 0..names.len() {
            let raw = row.try_get_raw(i)?;
            let cell = if raw.is_null() {
                Cell::Null
            } else {
                match raw.type_info().name() {
                    "INT8" => Cell::Int(row.try_get::<i64, _>(i)?),
                    "INT4" => Cell::Int(i64::from(row.try_get::<i32, _>(i)?)),
                    "INT2" => Cell::Int(i64::from(row.try_get::<i16, _>(i)?)),
                    "BOOL" => Cell::Int(i64::from(row.try_get::<bool, _>(i)?)),
                    "FLOAT8" => Cell::Real(row.try_get::<f64, _>(i)?),
                    "FLOAT4" => Cell::Real(f64::from(row.try_get::<f32, _>(i)?)),
                    "JSONB" | "JSON" => Cell::Json(row.try_get::<Value, _>(i)?),
                    _ => Cell::Text(row.try_get::<String, _>(i)?),
                }
            };
            cells.push(cell);
        }
        out.push(Row {
            names: names.clone(),
            cells,
        });
    }
    Ok(out)
}

#[async_trait]
impl Backend for PgDb {
    const DIALECT: Dialect = Dialect::Postgres;
    const NAME: &'static str = "postgres";
    type Tx = sqlx::Transaction<'static, sqlx::Postgres>;

    async fn begin(&self) -> Result<Self::Tx, StoreError> {
        Ok(self.pool.begin().await?)
    }
    async fn begin_lease(&self) -> Result<Self::Tx, StoreError> {
        Ok(self.lease_pool.begin().await?)
    }
    async fn commit(tx: Self::Tx) -> Result<(), StoreError> {
        Ok(tx.commit().await?)
    }
    async fn exec(tx: &mut Self::Tx, sql: Sql, args: Vec<Arg>) -> Result<u64, StoreError> {
        Ok(pg_query(sql, args)
            .execute(&mut **tx)
            .await?
            .rows_affected())
    }
    async fn fetch(tx: &mut Self::Tx, sql: Sql, args: Vec<Arg>) -> Result<Vec<Row>, StoreError> {
        pg_rows(pg_query(sql, args).fetch_all(&mut **tx).await?)
    }
    async fn read(&self, sql: Sql, args: Vec<Arg>) -> Result<Vec<Row>, StoreError> {
        pg_rows(pg_query(sql, args).fetch_all(&self.pool).await?)
    }
    async fn start_apply(tx: &mut Self::Tx) -> Result<(), StoreError> {
        sqlx::query("SELECT set_config('hubsync.applying', 'on', true)")
            .execute(&mut **tx)
            .await?;
        Ok(())
    }
    async fn end_apply(tx: &mut Self::Tx) -> Result<(), StoreError> {
        sqlx::query("SELECT set_config('hubsync.applying', 'off', true)")
            .execute(&mut **tx)
            .await?;
        Ok(())
    }
    async fn wait_for_outbox(&self, timeout: std::time::Duration) -> Result<bool, StoreError> {
        self.listener.wait(&self.pool, timeout).await
    }
    async fn close(&self) {
        self.listener.stop();
        self.pool.close().await;
        self.lease_pool.close().await;
    }
}

#[cfg(test)]
mod sqlite_unit {
    use super::*;

    async fn db() -> (SqliteDb, tempfile::TempDir) {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("unit.db");
        let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}?mode=rwc", path.display()))
            .await
            .expect("pool");
        let conns = SqliteConns::open(&path, 2, std::time::Duration::from_secs(1)).expect("open");
        let db = SqliteDb {
            pool,
            conns: Arc::new(conns),
        };
        let mut tx = db.begin().await.expect("begin");
        SqliteDb::exec(
            &mut tx,
            Sql::Static("CREATE TABLE t (a INTEGER, b TEXT)"),
            vec![],
        )
        .await
        .expect("create");
        SqliteDb::commit(tx).await.expect("commit");
        (db, dir)
    }

    async fn count(db: &SqliteDb) -> i64 {
        let rows = db
            .read(Sql::Static("SELECT count(*) AS n FROM t"), vec![])
            .await
            .expect("count");
        rows[0].i64("t", "n").expect("n")
    }

    #[tokio::test]
    async fn numbered_placeholders_bind_by_number_not_by_position() {
        let (db, _dir) = db().await;
        let mut tx = db.begin().await.expect("begin");
        // `$2` comes first in the text: SQLite numbers it parameter 1.
        SqliteDb::exec(
            &mut tx,
            Sql::Static("INSERT INTO t (b, a) VALUES ($2, $1)"),
            vec![Arg::Int(Some(7)), Arg::Text(Some("seven".into()))],
        )
        .await
        .expect("insert");
        SqliteDb::commit(tx).await.expect("commit");
        let rows = db
            .read(
                // `$1` twice: one parameter, bound once.
                Sql::Static("SELECT a, b FROM t WHERE a = $1 OR b = $1"),
                vec![Arg::Int(Some(7))],
            )
            .await
            .expect("read");
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].text("t", "b").expect("b"), "seven");
        let missing = db
            .read(
                Sql::Static("SELECT a FROM t WHERE a = $2"),
                vec![Arg::Int(Some(7))],
            )
            .await;
        assert!(
            missing.is_err(),
            "a placeholder without its argument is an error"
        );
    }

    #[tokio::test]
    async fn a_transaction_dropped_before_commit_is_rolled_back_and_the_writer_is_free() {
        let (db, _dir) = db().await;
        let mut tx = db.begin().await.expect("begin");
        SqliteDb::exec(&mut tx, Sql::Static("INSERT INTO t (a) VALUES (1)"), vec![])
            .await
            .expect("insert");
        drop(tx);
        assert_eq!(count(&db).await, 0);
        // A cancelled transaction (its future dropped mid-way) leaves the writer usable.
        let db2 = db.clone();
        let cancelled = tokio::time::timeout(std::time::Duration::from_millis(1), async move {
            let mut tx = db2.begin().await.expect("begin");
            SqliteDb::exec(&mut tx, Sql::Static("INSERT INTO t (a) VALUES (2)"), vec![])
                .await
                .expect("insert");
            std::future::pending::<()>().await;
        })
        .await;
        assert!(cancelled.is_err());
        let mut tx = db.begin().await.expect("begin after cancel");
        SqliteDb::exec(&mut tx, Sql::Static("INSERT INTO t (a) VALUES (3)"), vec![])
            .await
            .expect("insert");
        SqliteDb::commit(tx).await.expect("commit");
        assert_eq!(count(&db).await, 1);
    }

    #[tokio::test]
    async fn a_writer_waits_for_the_apps_write_lock_instead_of_failing() {
        let (db, dir) = db().await;
        let app = rusqlite::Connection::open(dir.path().join("unit.db")).expect("app");
        app.execute_batch("BEGIN IMMEDIATE; INSERT INTO t (a) VALUES (10);")
            .expect("app write");
        let writer = tokio::spawn({
            let db = db.clone();
            async move {
                let mut tx = db.begin().await.expect("begin waits, then succeeds");
                SqliteDb::exec(
                    &mut tx,
                    Sql::Static("INSERT INTO t (a) VALUES (11)"),
                    vec![],
                )
                .await
                .expect("insert");
                SqliteDb::commit(tx).await.expect("commit");
            }
        });
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        app.execute_batch("COMMIT").expect("app commit");
        writer.await.expect("writer");
        assert_eq!(count(&db).await, 2);
    }

    #[tokio::test]
    async fn a_closed_store_refuses_statements() {
        let (db, _dir) = db().await;
        db.close().await;
        assert!(matches!(db.begin().await, Err(StoreError::Closed)));
        assert!(matches!(
            db.read(Sql::Static("SELECT 1"), vec![]).await,
            Err(StoreError::Closed)
        ));
    }
}
