//! The store's error type.

use hubsync_core::{ObjectType, PortalId};

/// Everything that can go wrong in the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database URL names no supported backend. Only the scheme is kept: a URL may carry a
    /// password.
    #[error("unsupported database url scheme `{0}`: expected sqlite:// or postgres://")]
    UnsupportedUrl(String),
    /// The database driver failed (connection, query, constraint).
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// hubsync's own SQLite connections failed (open, query, constraint).
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// A blocking task running a statement did not complete (it panicked, or the runtime is
    /// shutting down).
    #[error("database worker failed: {0}")]
    Worker(String),
    /// The store was closed; nothing more can be read or written through it.
    #[error("the store is closed")]
    Closed,
    /// Running the embedded migrations failed.
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A field name that is not a column of the app table (nor a `custom_fields.` key).
    #[error("unknown field `{field}` for {object_type}")]
    UnknownField {
        /// The object type queried.
        object_type: ObjectType,
        /// The offending field name.
        field: String,
    },
    /// A value that does not fit its column (a string in a number column, a list that is not
    /// a list).
    #[error("invalid value for {object_type}.{field}: {reason}")]
    InvalidValue {
        /// The object type written.
        object_type: ObjectType,
        /// The field.
        field: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A filter that cannot be applied (`in` without a list, `lt` on a list column).
    #[error("invalid filter on `{field}`: {reason}")]
    InvalidFilter {
        /// The filtered field.
        field: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A write carried a fence older than the portal's current lease: another worker owns the
    /// portal now, and this write was refused.
    #[error("stale fence {fence} for portal {portal}: the lease has moved on")]
    Fenced {
        /// The portal.
        portal: PortalId,
        /// The fence the write carried.
        fence: i64,
    },
    /// A record changed between the read an apply was planned on and the apply itself (an app
    /// write, an outbound acknowledgement or another apply came in between): nothing was
    /// written, and the caller plans again from the current state.
    #[error("{object_type} record {record} changed since the apply was planned")]
    Stale {
        /// The object type.
        object_type: ObjectType,
        /// The record (`local:<id>` or `hubspot:<id>`).
        record: String,
    },
    /// A stored value could not be read back (a hand-edited row, a foreign schema).
    #[error("corrupt value in {table}.{column}: {reason}")]
    Corrupt {
        /// The table.
        table: &'static str,
        /// The column.
        column: String,
        /// What is wrong with it.
        reason: String,
    },
}

impl StoreError {
    /// Whether this is [`StoreError::Stale`]: planning again from the current state will do.
    pub fn is_stale(&self) -> bool {
        matches!(self, StoreError::Stale { .. })
    }

    pub(crate) fn corrupt(table: &'static str, column: &str, reason: impl Into<String>) -> Self {
        StoreError::Corrupt {
            table,
            column: column.to_owned(),
            reason: reason.into(),
        }
    }
}
