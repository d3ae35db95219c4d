//! The PostgreSQL backend: claims use `FOR UPDATE SKIP LOCKED`, and every capture sends
//! `NOTIFY hubsync_outbox` (payload: the portal id), which [`OutboxListener`] turns into an
//! immediate wake-up of [`Store::wait_for_outbox`](crate::Store::wait_for_outbox).

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgListener, PgPoolOptions};
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use crate::db::PgDb;
use crate::error::StoreError;
use crate::sql_store::SqlStore;

/// The store on PostgreSQL.
pub type PgStore = SqlStore<PgDb>;

/// The channel the capture trigger notifies.
const CHANNEL: &str = "hubsync_outbox";

/// How a [`PgStore`] uses its connections.
///
/// Queue work, the API and the app-facing reads share the main pool; lease acquisitions,
/// renewals and releases have a small pool of their own, so a process whose workers hold every
/// main connection still renews its leases on time. Waits for a connection are short, so that
/// a database outage surfaces as errors within seconds (the workers back off and resume) rather
/// than as steps that hang.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PgOptions {
    /// Connections of the main pool.
    pub pool_size: u32,
    /// Connections reserved for leases (at least one).
    pub lease_pool_size: u32,
    /// The longest a statement waits for a free connection (or for a new one to open) before
    /// it fails.
    pub acquire_timeout: Duration,
    /// The longest a lease statement may run (a takeover waits for the commit of a fenced
    /// transaction in flight); a blocked one fails and is tried again next round.
    pub lease_statement_timeout: Duration,
    /// The server ends a session that sits inside a transaction without sending anything for
    /// this long (`idle_in_transaction_session_timeout`): a process paused or cut off
    /// mid-transaction releases its row locks, so that it cannot hold up the process taking its
    /// portals over.
    pub idle_in_transaction_timeout: Duration,
}

impl Default for PgOptions {
    fn default() -> Self {
        PgOptions {
            pool_size: 10,
            lease_pool_size: 2,
            acquire_timeout: Duration::from_secs(5),
            lease_statement_timeout: Duration::from_secs(1),
            idle_in_transaction_timeout: Duration::from_secs(5),
        }
    }
}

impl SqlStore<PgDb> {
    /// Connects to a `postgres://` URL with the default [`PgOptions`] and brings the schema up
    /// to date.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        Self::connect_with(url, PgOptions::default()).await
    }

    /// Connects to a `postgres://` URL and brings the schema up to date.
    pub async fn connect_with(url: &str, options: PgOptions) -> Result<Self, StoreError> {
        let connect: PgConnectOptions = url.parse()?;
        let idle_ms = options.idle_in_transaction_timeout.as_millis().max(1);
        let pool = PgPoolOptions::new()
            .max_connections(options.pool_size.max(1))
            .acquire_timeout(options.acquire_timeout)
            .connect_with(
                connect
                    .clone()
                    .options([("idle_in_transaction_session_timeout", idle_ms)]),
            )
            .await?;
        let lease_ms = options.lease_statement_timeout.as_millis().max(1);
        let lease_pool = PgPoolOptions::new()
            .max_connections(options.lease_pool_size.max(1))
            .acquire_timeout(options.acquire_timeout)
            .connect_lazy_with(connect.options([
                ("statement_timeout", lease_ms),
                ("lock_timeout", lease_ms),
                ("idle_in_transaction_session_timeout", idle_ms),
            ]));
        crate::migrations::postgres().run(&pool).await?;
        tracing::info!(
            backend = "postgres",
            pool_size = options.pool_size,
            lease_pool_size = options.lease_pool_size,
            acquire_timeout_ms = options.acquire_timeout.as_millis() as u64,
            "store opened"
        );
        Ok(SqlStore::new(PgDb {
            pool,
            lease_pool,
            listener: Arc::new(OutboxListener::default()),
        }))
    }

    /// The connection pool, for SQL the app would run itself (tests, examples, benchmarks).
    pub fn pool(&self) -> &sqlx::PgPool {
        &self.db.pool
    }
}

/// Listens on `hubsync_outbox` in a background task, started on the first wait.
#[derive(Debug, Default)]
pub struct OutboxListener {
    notify: Arc<Notify>,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl OutboxListener {
    /// Waits for a notification (one that arrived since the last wait counts), up to `timeout`.
    pub(crate) async fn wait(
        &self,
        pool: &sqlx::PgPool,
        timeout: Duration,
    ) -> Result<bool, StoreError> {
        self.ensure_started(pool).await?;
        Ok(tokio::time::timeout(timeout, self.notify.notified())
            .await
            .is_ok())
    }

    async fn ensure_started(&self, pool: &sqlx::PgPool) -> Result<(), StoreError> {
        if self.slot().as_ref().is_some_and(|t| !t.is_finished()) {
            return Ok(());
        }
        let mut listener = PgListener::connect_with(pool).await?;
        listener.listen(CHANNEL).await?;
        let notify = self.notify.clone();
        let task = tokio::spawn(async move {
            loop {
                match listener.recv().await {
                    Ok(_) => notify.notify_one(),
                    Err(error) => {
                        // The listener reconnects on the next recv; wake the waiter so that it
                        // polls meanwhile instead of missing a capture.
                        tracing::warn!(%error, "outbox listener lost its connection");
                        notify.notify_one();
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                }
            }
        });
        let mut slot = self.slot();
        if let Some(old) = slot.replace(task) {
            old.abort();
        }
        Ok(())
    }

    fn slot(&self) -> MutexGuard<'_, Option<JoinHandle<()>>> {
        // The guarded value is a task handle: a panic elsewhere cannot leave it inconsistent.
        self.task
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Stops the background task.
    pub(crate) fn stop(&self) {
        if let Some(task) = self.slot().take() {
            task.abort();
        }
    }
}
