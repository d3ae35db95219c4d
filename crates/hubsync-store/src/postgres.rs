//! The PostgreSQL backend: claims use `FOR UPDATE SKIP LOCKED`, and every capture sends
//! `NOTIFY hubsync_outbox` (payload: the portal id), which [`OutboxListener`] turns into an
//! immediate wake-up of [`Store::wait_for_outbox`](crate::Store::wait_for_outbox).

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use sqlx::postgres::{PgListener, PgPoolOptions};
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use crate::db::PgDb;
use crate::error::StoreError;
use crate::sql_store::SqlStore;

/// The store on PostgreSQL.
pub type PgStore = SqlStore<PgDb>;

/// The channel the capture trigger notifies.
const CHANNEL: &str = "hubsync_outbox";

impl SqlStore<PgDb> {
    /// Connects to a `postgres://` URL and brings the schema up to date.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let pool = PgPoolOptions::new().max_connections(8).connect(url).await?;
        crate::migrations::postgres().run(&pool).await?;
        tracing::info!(backend = "postgres", "store opened");
        Ok(SqlStore::new(PgDb {
            pool,
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
