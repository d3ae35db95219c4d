//! Counters tests and benchmarks read to count calls: requests by portal, app, lane and
//! operation; 429s by policy; injected faults; webhook deliveries.

use std::collections::BTreeMap;

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

/// Counters of one portal.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortalStats {
    /// Authenticated API requests (including refused ones).
    pub requests: u64,
    /// Requests by app id.
    pub requests_by_app: BTreeMap<u64, u64>,
    /// Requests by lane: `general`, `search`.
    pub requests_by_lane: BTreeMap<String, u64>,
    /// Requests by operation (e.g. `contacts.batch_update`).
    pub requests_by_operation: BTreeMap<String, u64>,
    /// 429 answers by policy name.
    pub rate_limited: BTreeMap<String, u64>,
    /// Injected 5xx answers.
    pub injected_5xx: u64,
    /// Requests carried out but answered with an injected 5xx.
    pub injected_5xx_after_write: u64,
    /// Requests slowed by injected latency.
    pub injected_latency: u64,
    /// Webhook events queued for delivery (after drop/duplicate faults).
    pub webhook_events_queued: u64,
    /// Webhook events dropped by the drop fault.
    pub webhook_events_dropped: u64,
    /// Webhook events duplicated by the duplicate fault.
    pub webhook_events_duplicated: u64,
    /// Delivery attempts (HTTP POSTs).
    pub webhook_deliveries_attempted: u64,
    /// Deliveries answered 2xx.
    pub webhook_deliveries_succeeded: u64,
    /// Deliveries that failed (non-2xx, timeout, connection error).
    pub webhook_deliveries_failed: u64,
    /// Batches abandoned after the last retry.
    pub webhook_batches_abandoned: u64,
    /// Events delivered successfully (counting each event once per successful POST).
    pub webhook_events_delivered: u64,
}

/// A snapshot of all counters.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatsSnapshot {
    /// Per portal.
    pub portals: BTreeMap<u64, PortalStats>,
    /// Requests rejected with 401.
    pub unauthenticated: u64,
    /// Calls to the OAuth token endpoint.
    pub oauth_token_requests: u64,
}

impl StatsSnapshot {
    /// Counters of one portal (zero if none yet).
    pub fn portal(&self, id: u64) -> PortalStats {
        self.portals.get(&id).cloned().unwrap_or_default()
    }
}

/// Shared counters.
#[derive(Debug, Default)]
pub struct Stats {
    inner: Mutex<StatsSnapshot>,
}

impl Stats {
    /// Applies `f` to a portal's counters.
    pub fn portal(&self, id: u64, f: impl FnOnce(&mut PortalStats)) {
        f(self.inner.lock().portals.entry(id).or_default());
    }

    /// Applies `f` to the global counters.
    pub fn global(&self, f: impl FnOnce(&mut StatsSnapshot)) {
        f(&mut self.inner.lock());
    }

    /// A copy of every counter.
    pub fn snapshot(&self) -> StatsSnapshot {
        self.inner.lock().clone()
    }

    /// Zeroes every counter.
    pub fn reset(&self) {
        *self.inner.lock() = StatsSnapshot::default();
    }
}
