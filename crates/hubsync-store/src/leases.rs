//! The lease table: acquisitions, renewals and releases of the per-portal worker leases (see
//! `hubsync_engine::lease`).
//!
//! - **One clock.** On PostgreSQL every expiry is computed and compared on the database
//!   server's clock (`clock_timestamp()`), never on the callers': two processes whose clocks
//!   disagree still agree on whether a lease has expired, so skew cannot make two owners. SQLite
//!   is one process, whose clock is the only one.
//! - **Own connections.** Lease statements run on [`Backend::begin_lease`]: on PostgreSQL a small
//!   pool of their own, so that queue work holding every main connection never delays a renewal.
//! - **Renewals never wait for queue work.** Fenced writes lock the lease row `FOR KEY SHARE`
//!   (see `check_fence`), which conflicts with the `FOR UPDATE` a takeover takes, but not with
//!   the plain `UPDATE` of a renewal: a takeover waits until the fenced transactions in flight
//!   have committed (and any that start later see the new fence), while renewals go through.

use std::time::Duration;

use hubsync_core::PortalId;

use crate::db::{Arg, Backend, Dialect, Sql};
use crate::error::StoreError;
use crate::model::{Fence, now_ms};
use crate::sql_store::SqlStore;

/// The statement for this backend's dialect.
fn pick<B: Backend>(sqlite: &'static str, postgres: &'static str) -> Sql {
    match B::DIALECT {
        Dialect::Sqlite => Sql::Static(sqlite),
        Dialect::Postgres => Sql::Static(postgres),
    }
}

fn pid(portal: PortalId) -> Arg {
    Arg::Int(Some(i64::try_from(portal.get()).unwrap_or(i64::MAX)))
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// The arguments after the statement's own: on SQLite the caller's clock (the last parameter,
/// `$N` below), on PostgreSQL nothing (the statement reads the server's clock).
fn clock<B: Backend>(mut args: Vec<Arg>) -> Vec<Arg> {
    if B::DIALECT == Dialect::Sqlite {
        args.push(Arg::Int(Some(now_ms())));
    }
    args
}

fn fence_of(rows: Vec<crate::db::Row>) -> Result<Option<Fence>, StoreError> {
    match rows.into_iter().next() {
        Some(row) => Ok(Some(Fence(row.i64("leases", "fence")?))),
        None => Ok(None),
    }
}

impl<B: Backend> SqlStore<B> {
    /// See [`Store::try_acquire_lease`](crate::Store::try_acquire_lease).
    pub(crate) async fn lease_try_acquire(
        &self,
        portal: PortalId,
        owner: &str,
        ttl: Duration,
    ) -> Result<Option<Fence>, StoreError> {
        let ttl = Arg::Int(Some(millis(ttl)));
        let mut tx = self.db.begin_lease().await?;
        // Lock the row first: on PostgreSQL `FOR UPDATE` waits for the fenced transactions in
        // flight (they hold `FOR KEY SHARE`), so none of them commits after the takeover.
        let existing = B::fetch(
            &mut tx,
            pick::<B>(
                "SELECT fence FROM leases WHERE portal_id = $1",
                "SELECT fence FROM leases WHERE portal_id = $1 FOR UPDATE",
            ),
            vec![pid(portal)],
        )
        .await?;
        let fence = if existing.is_empty() {
            let rows = B::fetch(
                &mut tx,
                pick::<B>(
                    "INSERT INTO leases (portal_id, owner, fence, expires_at) VALUES ($1, $2, 1, $4 + $3) \
                     ON CONFLICT (portal_id) DO NOTHING RETURNING fence",
                    "INSERT INTO leases (portal_id, owner, fence, expires_at) \
                     VALUES ($1, $2, 1, (extract(epoch FROM clock_timestamp()) * 1000)::bigint + $3) \
                     ON CONFLICT (portal_id) DO NOTHING RETURNING fence",
                ),
                clock::<B>(vec![pid(portal), owner.into(), ttl]),
            )
            .await?;
            fence_of(rows)?
        } else {
            let rows = B::fetch(
                &mut tx,
                pick::<B>(
                    "UPDATE leases SET owner = $2, fence = fence + 1, expires_at = $4 + $3 \
                     WHERE portal_id = $1 AND (owner = $2 OR expires_at < $4) RETURNING fence",
                    "UPDATE leases SET owner = $2, fence = fence + 1, \
                     expires_at = (extract(epoch FROM clock_timestamp()) * 1000)::bigint + $3 \
                     WHERE portal_id = $1 \
                     AND (owner = $2 OR expires_at < (extract(epoch FROM clock_timestamp()) * 1000)::bigint) \
                     RETURNING fence",
                ),
                clock::<B>(vec![pid(portal), owner.into(), ttl]),
            )
            .await?;
            fence_of(rows)?
        };
        B::commit(tx).await?;
        if let Some(fence) = fence {
            tracing::info!(portal = %portal, owner, fence = fence.0, "lease acquired");
        }
        Ok(fence)
    }

    /// See [`Store::renew_lease`](crate::Store::renew_lease).
    pub(crate) async fn lease_renew(
        &self,
        portal: PortalId,
        owner: &str,
        fence: Fence,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        let mut tx = self.db.begin_lease().await?;
        let n = B::exec(
            &mut tx,
            pick::<B>(
                "UPDATE leases SET expires_at = $5 + $4 WHERE portal_id = $1 AND owner = $2 AND fence = $3",
                "UPDATE leases SET expires_at = (extract(epoch FROM clock_timestamp()) * 1000)::bigint + $4 \
                 WHERE portal_id = $1 AND owner = $2 AND fence = $3",
            ),
            clock::<B>(vec![
                pid(portal),
                owner.into(),
                Arg::Int(Some(fence.0)),
                Arg::Int(Some(millis(ttl))),
            ]),
        )
        .await?;
        B::commit(tx).await?;
        Ok(n > 0)
    }

    /// See [`Store::release_lease`](crate::Store::release_lease).
    pub(crate) async fn lease_release(
        &self,
        portal: PortalId,
        owner: &str,
        fence: Fence,
    ) -> Result<(), StoreError> {
        // The row stays (expired) so that the next owner's fence is higher than this one.
        let mut tx = self.db.begin_lease().await?;
        B::exec(
            &mut tx,
            Sql::Static(
                "UPDATE leases SET expires_at = 0 WHERE portal_id = $1 AND owner = $2 AND fence = $3",
            ),
            vec![pid(portal), owner.into(), Arg::Int(Some(fence.0))],
        )
        .await?;
        B::commit(tx).await?;
        Ok(())
    }
}
