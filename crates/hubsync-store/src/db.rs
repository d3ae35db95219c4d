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

    /// Rows from a JSON array of objects (one `json_group_array` cell).
    pub fn many_from_json(text: &str) -> Result<Vec<Row>, StoreError> {
        let value: Value = serde_json::from_str(text)
            .map_err(|e| StoreError::corrupt("json rows", "", format!("invalid json: {e}")))?;
        match value {
            Value::Array(rows) => rows.into_iter().map(Row::from_json).collect(),
            _ => Err(StoreError::corrupt(
                "json rows",
                "",
                "expected a json array",
            )),
        }
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

/// The SQLite connection pool.
#[derive(Debug, Clone)]
pub struct SqliteDb {
    pub(crate) pool: sqlx::SqlitePool,
}

fn sqlite_query(
    sql: Sql,
    args: Vec<Arg>,
) -> sqlx::query::Query<'static, sqlx::Sqlite, sqlx::sqlite::SqliteArguments> {
    let mut q = match sql {
        Sql::Static(s) => sqlx::query(s),
        Sql::Built(s) => sqlx::query(AssertSqlSafe(s)),
    };
    for arg in args {
        q = match arg {
            Arg::Int(v) => q.bind(v),
            Arg::Real(v) => q.bind(v),
            Arg::Text(v) => q.bind(v),
            Arg::Json(v) => q.bind(v.map(|v| v.to_string())),
        };
    }
    q
}

fn sqlite_rows(rows: Vec<sqlx::sqlite::SqliteRow>) -> Result<Vec<Row>, StoreError> {
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
                    "INTEGER" | "BOOLEAN" => Cell::Int(row.try_get::<i64, _>(i)?),
                    "REAL" => Cell::Real(row.try_get::<f64, _>(i)?),
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
impl Backend for SqliteDb {
    const DIALECT: Dialect = Dialect::Sqlite;
    const NAME: &'static str = "sqlite";
    type Tx = sqlx::Transaction<'static, sqlx::Sqlite>;

    async fn begin(&self) -> Result<Self::Tx, StoreError> {
        Ok(self.pool.begin_with("BEGIN IMMEDIATE").await?)
    }
    async fn commit(tx: Self::Tx) -> Result<(), StoreError> {
        Ok(tx.commit().await?)
    }
    async fn exec(tx: &mut Self::Tx, sql: Sql, args: Vec<Arg>) -> Result<u64, StoreError> {
        Ok(sqlite_query(sql, args)
            .execute(&mut **tx)
            .await?
            .rows_affected())
    }
    async fn fetch(tx: &mut Self::Tx, sql: Sql, args: Vec<Arg>) -> Result<Vec<Row>, StoreError> {
        sqlite_rows(sqlite_query(sql, args).fetch_all(&mut **tx).await?)
    }
    async fn read(&self, sql: Sql, args: Vec<Arg>) -> Result<Vec<Row>, StoreError> {
        sqlite_rows(sqlite_query(sql, args).fetch_all(&self.pool).await?)
    }
    async fn start_apply(tx: &mut Self::Tx) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO _hubsync_apply_guard (id) VALUES (1) ON CONFLICT DO NOTHING")
            .execute(&mut **tx)
            .await?;
        Ok(())
    }
    async fn end_apply(tx: &mut Self::Tx) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM _hubsync_apply_guard")
            .execute(&mut **tx)
            .await?;
        Ok(())
    }
    async fn wait_for_outbox(&self, timeout: std::time::Duration) -> Result<bool, StoreError> {
        // SQLite has no cross-process notification; the caller polls at its timeout.
        tokio::time::sleep(timeout).await;
        Ok(false)
    }
    async fn close(&self) {
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
