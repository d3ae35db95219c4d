//! The store: hubsync's database behind one [`Store`] trait, with a SQLite backend
//! ([`SqliteStore`], the default, embedded) and a PostgreSQL backend ([`PgStore`]). [`connect`]
//! picks one from a URL. The schema is embedded and migrated at connect; a database written by
//! an older version is upgraded, never wiped.
//!
//! Both backends share one implementation ([`SqlStore`]) over a thin driver layer; the few
//! statements that differ (claims with `FOR UPDATE SKIP LOCKED`, JSON functions, the apply
//! guard) are picked per dialect. One conformance suite runs against both.
//!
//! # Tables (every row scoped by `portal_id`)
//!
//! | table | holds |
//! |---|---|
//! | `portals` | connected HubSpot accounts: name, app id, credentials (opaque JSON), status and reason, config |
//! | `contacts`, `companies`, `deals` | **the app tables**: the records in the unified model, read and written by the app with plain SQL (see the crate README) |
//! | `outbox` | app writes captured by triggers (`upsert`/`delete` per row write), with lease and retry columns |
//! | `_hubsync_apply_guard` | SQLite only: a row exists only inside hubsync's own write transactions, so the capture triggers skip them |
//! | `sync_state` | per record: HubSpot id, `hubsync_id`, merge base and its timestamps, fingerprints sent/received, origin marker |
//! | `id_aliases` | HubSpot ids merged away, and the survivor each resolves to |
//! | `inbox` | raw inbound events, stored once per identity, with lease and retry columns |
//! | `dead_letters` | items that failed for good: source, reason, category, payload, attempts |
//! | `conflicts` | every settled conflict: field, base, both values and times, policy, winner |
//! | `cursors` | per-portal named positions (reconciler walks) |
//! | `counters` | durable per-portal statistics (echoes by path, conflicts, repairs) |
//! | `api_keys` | REST API keys by SHA-256 hash, with the portals each may touch |
//! | `app_endpoints`, `app_deliveries` | the app's webhook endpoints and the durable queue of signed notifications |
//! | `leases` | per-portal worker leases with fencing tokens, for scale-out |
//!
//! # Change capture
//! Triggers on the app tables write an `outbox` row in the app's own transaction: insert and
//! update as `upsert`, a soft delete (setting `deleted_at`) and a hard delete as `delete`.
//! hubsync's own writes are not captured: on SQLite they run with a row in
//! `_hubsync_apply_guard`, on PostgreSQL with `SET LOCAL hubsync.applying = 'on'`.

pub mod association;
mod batch;
mod db;
mod error;
mod leases;
mod migrations;
pub mod model;
mod postgres;
mod schema;
mod sql_store;
mod sqlite;
mod store;

#[cfg(test)]
mod tests;

use std::sync::Arc;

pub use association::{AssociationApplied, AssociationBase, AssociationOp, AssociationStore};
pub use db::{Backend, PgDb, SqliteDb};
pub use error::StoreError;
pub use model::*;
pub use postgres::{PgOptions, PgStore};
pub use schema::check_fields;
pub use sql_store::SqlStore;
pub use sqlite::SqliteStore;
pub use store::Store;

/// Opens the store a URL names: `sqlite://path?mode=rwc` (or `sqlite::memory:`) or
/// `postgres://user@host/db`. Runs the embedded migrations.
pub async fn connect(url: &str) -> Result<Arc<dyn Store>, StoreError> {
    connect_with(url, PgOptions::default()).await
}

/// [`connect`], with the PostgreSQL pool settings to use if the URL names PostgreSQL (SQLite
/// ignores them).
pub async fn connect_with(url: &str, pg: PgOptions) -> Result<Arc<dyn Store>, StoreError> {
    let scheme = url.split(':').next().unwrap_or_default();
    match scheme {
        "sqlite" => Ok(Arc::new(SqliteStore::open(url).await?)),
        "postgres" | "postgresql" => Ok(Arc::new(PgStore::connect_with(url, pg).await?)),
        other => Err(StoreError::UnsupportedUrl(other.to_owned())),
    }
}
