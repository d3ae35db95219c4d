//! Engine tunables, with production defaults.

use std::collections::BTreeMap;
use std::time::Duration;

use hubsync_core::{AppId, ObjectType, PolicySet};

/// How the workers behave. `Default` gives production values.
#[derive(Debug, Clone)]
pub struct EngineSettings {
    /// Our HubSpot app id: events whose change source names it are our own echoes.
    pub app_id: Option<AppId>,
    /// A name for this process in leases and claims.
    pub worker_id: String,
    /// Records per HubSpot batch call (≤ 100).
    pub outbound_batch: usize,
    /// Batches pushed per outbound step.
    pub outbound_batches_per_step: usize,
    /// How long claimed outbox items stay ours.
    pub outbound_lease: Duration,
    /// Inbox events claimed per inbound step.
    pub inbound_batch: u32,
    /// How long claimed inbox events stay ours.
    pub inbound_lease: Duration,
    /// Conflict policies per object type (missing: latest-wins everywhere).
    pub policies: BTreeMap<ObjectType, PolicySet>,
    /// Initial import: also walk the records through the search lane (200 a page, its own
    /// 5 requests/s budget) from the highest ids down while the list walk comes up, so the
    /// import runs at the sum of both budgets.
    pub import_search_lane: bool,
    /// Incremental reconciliation: how far behind the cursor each pass looks again.
    pub reconcile_lookback: Duration,
    /// Incremental reconciliation: time between passes.
    pub reconcile_interval: Duration,
    /// Time between association reconcile passes (association changes do not bump HubSpot's
    /// last-modified date, so the incremental pass cannot see them). A pass costs one batch read
    /// per 1,000 contacts and two per 1,000 deals.
    pub association_reconcile_interval: Duration,
    /// Attempts before a retryable outbound failure is dead-lettered.
    pub max_attempts: u32,
    /// Idle poll interval of the workers when nothing wakes them.
    pub idle_poll: Duration,
    /// How long the outbound worker lets fresh app writes accumulate after waking, so that a
    /// trickle of edits still goes out in full batches (the budget buys the most).
    pub outbound_linger: Duration,
    /// How long a process's lease on a portal lasts unrenewed (renewed every third of it); a
    /// dead process's portals move to the others within two of these.
    pub lease_period: Duration,
}

impl Default for EngineSettings {
    fn default() -> Self {
        EngineSettings {
            app_id: None,
            worker_id: format!("hubsync-{}", std::process::id()),
            outbound_batch: 100,
            outbound_batches_per_step: 4,
            outbound_lease: Duration::from_secs(60),
            inbound_batch: 2000,
            inbound_lease: Duration::from_secs(60),
            policies: BTreeMap::new(),
            import_search_lane: true,
            reconcile_lookback: Duration::from_secs(120),
            reconcile_interval: Duration::from_secs(300),
            association_reconcile_interval: Duration::from_secs(1800),
            max_attempts: 8,
            idle_poll: Duration::from_millis(200),
            outbound_linger: Duration::from_millis(250),
            lease_period: Duration::from_secs(15),
        }
    }
}

impl EngineSettings {
    /// The conflict policy of a type.
    pub fn policy(&self, object_type: ObjectType) -> PolicySet {
        self.policies.get(&object_type).cloned().unwrap_or_default()
    }
}
