//! In-process per-portal counters (the benchmarks read them; Prometheus gets the same events
//! through the `metrics` crate).

use std::sync::atomic::{AtomicU64, Ordering};

use crate::lanes::LaneKind;

#[derive(Debug, Default)]
pub(crate) struct PortalStats {
    general: AtomicU64,
    search: AtomicU64,
    rate_limited: AtomicU64,
    retries: AtomicU64,
    transient_failures: AtomicU64,
}

/// A snapshot of one portal's counters since the client started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct StatsSnapshot {
    /// HTTP requests sent (both lanes, every attempt).
    pub requests: u64,
    /// Requests on the general lane.
    pub general_requests: u64,
    /// Requests on the search lane.
    pub search_requests: u64,
    /// Responses that were 429.
    pub rate_limited: u64,
    /// Attempts that were retries (after a 429, 5xx, timeout or connection error).
    pub retries: u64,
    /// 5xx/423/477 answers, timeouts and connection errors.
    pub transient_failures: u64,
    /// OAuth refreshes that succeeded.
    pub token_refreshes: u64,
}

impl PortalStats {
    pub fn request(&self, lane: LaneKind) {
        match lane {
            LaneKind::General => &self.general,
            LaneKind::Search => &self.search,
        }
        .fetch_add(1, Ordering::Relaxed);
    }

    pub fn rate_limited(&self) {
        self.rate_limited.fetch_add(1, Ordering::Relaxed);
    }

    pub fn retry(&self) {
        self.retries.fetch_add(1, Ordering::Relaxed);
    }

    pub fn transient_failure(&self) {
        self.transient_failures.fetch_add(1, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> StatsSnapshot {
        let general = self.general.load(Ordering::Relaxed);
        let search = self.search.load(Ordering::Relaxed);
        StatsSnapshot {
            requests: general + search,
            general_requests: general,
            search_requests: search,
            rate_limited: self.rate_limited.load(Ordering::Relaxed),
            retries: self.retries.load(Ordering::Relaxed),
            transient_failures: self.transient_failures.load(Ordering::Relaxed),
            token_refreshes: 0,
        }
    }
}
