//! Portal ownership across processes: which process runs a portal's workers, decided by
//! leases in the shared database — no cluster protocol of our own.
//!
//! Every portal has one lease row (owner, fence, expiry). A process runs a portal's workers only
//! while it holds that lease and renews it; a lease that is not renewed expires and any other
//! process may take it, which bumps the fence. Writes made on a portal's behalf carry the fence,
//! so a process that lost its lease while paused has its writes refused
//! ([`StoreError::Fenced`]).
//!
//! Fair sharing needs the number of live processes. The store keeps no process table, so each
//! process also holds a *membership* lease on one of a range of reserved ids (never a HubSpot
//! portal id): the live processes are the held membership slots, found by probing the slots
//! with a zero-length acquisition (which succeeds only on a free slot and leaves it free).
//! Processes take the lowest free slot, so the slots stay dense and a probe stops after a few
//! free ones in a row.
//!
//! SQLite is a one-process database, so there every process uses the same owner name: a
//! process restarted after a crash takes its predecessor's leases over at once (bumping the
//! fences, which shuts out a predecessor that is somehow still running) instead of waiting for
//! them to expire.
//!
//! On PostgreSQL, expiry is set and compared on the database server's clock, so the processes'
//! clocks need not agree; each process measures its own [`Tenure`] on its monotonic clock, from
//! the moment it sent the renewal (never later than the server's). The fence, not any clock, is
//! what keeps database writes safe: every write a portal's workers make carries it and is
//! checked in the write's own transaction, last, just before the commit. Lease statements run on
//! a small connection pool of their own, and a fenced write locks the lease row in a mode that
//! blocks a takeover but not a renewal, so queue work never delays a renewal.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use hubsync_core::PortalId;
use hubsync_store::{Fence, Store, StoreError};

/// First reserved id of the membership slots; far above any HubSpot portal id and within the
/// store's signed 64-bit range.
const SLOT_BASE: u64 = 9_000_000_000_000_000_000;
/// The most processes counted.
const MAX_SLOTS: u64 = 1024;
/// Free slots in a row after which a count stops (tolerates holes left by dead processes).
const FREE_RUN: u64 = 3;

/// The owner name membership probes use; shared, so that concurrent probes never mistake one
/// another for a live process.
const PROBE_OWNER: &str = "membership-probe";

/// The owner name of the one process on a SQLite database.
pub const SINGLE_PROCESS_OWNER: &str = "single-process";

/// Proof that this process runs a portal's workers: the portal and the fence its writes carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lease {
    /// The portal.
    pub portal: PortalId,
    /// The fencing token of this tenure.
    pub fence: Fence,
}

/// A lease as a portal's workers hold it: the fence their database writes carry, and until when
/// this process knows the lease is still its own (moved forward by every renewal). HubSpot
/// cannot check a fence, so the outbound worker checks [`Tenure::is_current`] before it writes
/// there: a process that stalled past its lease stops writing before it learns it lost it.
#[derive(Debug, Clone)]
pub struct Tenure {
    fence: Fence,
    /// Milliseconds on [`monotonic_ms`]'s clock.
    valid_until: Arc<AtomicU64>,
}

impl Tenure {
    /// A tenure under `fence`, known valid for `valid_for` from now.
    pub fn new(fence: Fence, valid_for: Duration) -> Self {
        let tenure = Tenure {
            fence,
            valid_until: Arc::new(AtomicU64::new(0)),
        };
        tenure.extend(Instant::now(), valid_for);
        tenure
    }

    /// The fence writes carry.
    pub fn fence(&self) -> Fence {
        self.fence
    }

    /// Whether the lease is still known to be this process's.
    pub fn is_current(&self) -> bool {
        monotonic_ms(Instant::now()) < self.valid_until.load(Ordering::Acquire)
    }

    /// Records a renewal that started at `from`: the lease is ours for `valid_for` from then.
    pub fn extend(&self, from: Instant, valid_for: Duration) {
        let until = monotonic_ms(from)
            .saturating_add(u64::try_from(valid_for.as_millis()).unwrap_or(u64::MAX));
        self.valid_until.fetch_max(until, Ordering::AcqRel);
    }

    /// Ends the tenure: [`Tenure::is_current`] is false from now on.
    pub fn revoke(&self) {
        self.valid_until.store(0, Ordering::Release);
    }
}

/// Milliseconds since this process first asked, on the monotonic clock.
fn monotonic_ms(at: Instant) -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    let start = *START.get_or_init(Instant::now);
    u64::try_from(at.saturating_duration_since(start).as_millis()).unwrap_or(u64::MAX)
}

/// This process's side of the ownership protocol: its name in the lease table, its membership
/// slot and the lease period.
#[derive(Debug)]
pub struct Ownership {
    store: Arc<dyn Store>,
    owner: String,
    ttl: Duration,
    slot: Option<(u64, Fence)>,
}

impl Ownership {
    /// An ownership handle for a process named `name`; a random suffix makes the owner unique
    /// even if two processes are given the same name. On SQLite the owner is always
    /// [`SINGLE_PROCESS_OWNER`].
    pub fn new(store: Arc<dyn Store>, name: &str, ttl: Duration) -> Self {
        let owner = if store.backend() == "sqlite" {
            SINGLE_PROCESS_OWNER.to_owned()
        } else {
            format!("{name}#{:08x}", rand::random::<u32>())
        };
        Ownership {
            store,
            owner,
            ttl,
            slot: None,
        }
    }

    /// This process's owner name in the lease table.
    pub fn owner(&self) -> &str {
        &self.owner
    }

    /// The lease period.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// Renews this process's membership (joining on the first call or after losing it) and
    /// counts the live processes, this one included.
    pub async fn heartbeat(&mut self) -> Result<usize, StoreError> {
        if let Some((slot, fence)) = self.slot
            && !self
                .store
                .renew_lease(slot_id(slot), &self.owner, fence, self.ttl)
                .await?
        {
            tracing::warn!(owner = %self.owner, slot, "membership lost; joining again");
            self.slot = None;
        }
        if self.slot.is_none() {
            for slot in 0..MAX_SLOTS {
                if let Some(fence) = self
                    .store
                    .try_acquire_lease(slot_id(slot), &self.owner, self.ttl)
                    .await?
                {
                    tracing::info!(owner = %self.owner, slot, "joined");
                    self.slot = Some((slot, fence));
                    break;
                }
            }
        }
        let mine = self.slot.map(|(slot, _)| slot);
        let (mut live, mut free_run) = (0usize, 0u64);
        for slot in 0..MAX_SLOTS {
            if Some(slot) == mine {
                live += 1;
                free_run = 0;
                continue;
            }
            // A zero-length acquisition succeeds only on a free slot (or one another probe
            // touched: the probe owner is shared), and leaves it free.
            if self
                .store
                .try_acquire_lease(slot_id(slot), PROBE_OWNER, Duration::ZERO)
                .await?
                .is_some()
            {
                free_run += 1;
                if free_run >= FREE_RUN && mine.is_none_or(|m| slot > m) {
                    break;
                }
            } else {
                live += 1;
                free_run = 0;
            }
        }
        Ok(live.max(1))
    }

    /// Gives up the membership (graceful shutdown), so that the others rebalance at once.
    pub async fn leave(&mut self) {
        if let Some((slot, fence)) = self.slot.take()
            && let Err(error) = self
                .store
                .release_lease(slot_id(slot), &self.owner, fence)
                .await
        {
            tracing::warn!(owner = %self.owner, %error, "could not release the membership");
        }
    }

    /// Takes a portal's lease if it is free, expired or already ours.
    pub async fn acquire(&self, portal: PortalId) -> Result<Option<Lease>, StoreError> {
        let fence = self
            .store
            .try_acquire_lease(portal, &self.owner, self.ttl)
            .await?;
        Ok(fence.map(|fence| Lease { portal, fence }))
    }

    /// Extends a held lease. `false` if it has moved on (the portal's workers must stop).
    pub async fn renew(&self, lease: Lease) -> Result<bool, StoreError> {
        self.store
            .renew_lease(lease.portal, &self.owner, lease.fence, self.ttl)
            .await
    }

    /// Gives a lease up, so that another process may take it at once.
    pub async fn release(&self, lease: Lease) -> Result<(), StoreError> {
        self.store
            .release_lease(lease.portal, &self.owner, lease.fence)
            .await
    }
}

/// The fair share of `portals` among `processes`: rounded up, so the shares cover every portal.
pub fn fair_share(portals: usize, processes: usize) -> usize {
    portals.div_ceil(processes.max(1))
}

fn slot_id(slot: u64) -> PortalId {
    PortalId(SLOT_BASE + slot)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fair_shares_cover_every_portal() {
        for portals in 0..50 {
            for processes in 1..8 {
                assert!(fair_share(portals, processes) * processes >= portals);
            }
        }
        assert_eq!(fair_share(20, 3), 7);
        assert_eq!(fair_share(20, 0), 20);
    }
}
