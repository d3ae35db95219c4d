//! The sync engine: the workers that move changes between hubsync's store and HubSpot.
//!
//! # Layout
//! - [`outbound`]: outbox → coalesce → map → batch (≤ 100) → HubSpot → acknowledge. Every
//!   HubSpot write leaves through here.
//! - [`inbound`]: inbox → echo filter → coalesce per object → batch read what events do not
//!   carry → merge → apply.
//! - [`reconcile`]: initial import, linking, cursor walks, delete detection; feeds the same merge
//!   and the same outbox.
//! - [`associations`]: the association fields (`company_id`, `contact_ids`) both ways: v4
//!   batch writes after outbound pushes, reads on `associationChange` events, the association
//!   import and reconcile pass.
//! - [`apply`]: the one place a HubSpot state meets the local state: echo check, three-way merge
//!   ([`hubsync_core::merge`]), and the store operations that result. Inbound and reconcile both
//!   end here.
//! - [`converge`]: the convergence check — are both sides identical, with no duplicates?
//! - [`notify`]: signed app webhooks of every applied change.
//! - [`runner`]: per-portal worker loops, wake-ups and graceful shutdown; runs the portals this
//!   process holds a [`lease`] on.
//! - [`lease`]: portal ownership across processes (leases with fences, fair shares).
//! - [`setup`]: portal set-up (hubsync's own HubSpot properties) and credentials.
//!
//! Each worker exposes a single step (`push_once`, `apply_once`, …) that does one transaction's
//! worth of work and reports what it did, so tests drive queues deterministically and the loops
//! in [`runner`] only decide when to call them again.

pub mod apply;
pub mod associations;
pub mod converge;
pub mod error;
pub mod inbound;
pub mod lease;
pub mod notify;
pub mod outbound;
pub mod reconcile;
pub mod runner;
pub mod settings;
pub mod setup;

use std::sync::Arc;

use hubsync_core::{ObjectType, PortalId};
use hubsync_hubspot::{HubspotClient, PortalClient};
use hubsync_mapping::Mappings;
use hubsync_store::Store;

pub use error::EngineError;
pub use settings::EngineSettings;

/// Names of the durable counters the engine keeps per portal (shown by `status`).
pub mod counters {
    /// Echoes dropped because the event's change source named our app.
    pub const ECHO_CHANGE_SOURCE: &str = "echo.change_source";
    /// Echoes dropped because they carried our origin marker.
    pub const ECHO_ORIGIN: &str = "echo.origin";
    /// Echoes dropped because the state equalled the base / our last sent fingerprint.
    pub const ECHO_FINGERPRINT: &str = "echo.fingerprint";
    /// Conflicts settled by policy.
    pub const CONFLICTS: &str = "conflicts";
    /// Records written to HubSpot.
    pub const PUSHED: &str = "outbound.pushed";
    /// Records applied from HubSpot.
    pub const APPLIED: &str = "inbound.applied";
    /// Records the reconciler repaired locally.
    pub const REPAIRED_LOCAL: &str = "reconcile.repaired_local";
    /// Records the reconciler re-queued for HubSpot.
    pub const REPAIRED_REMOTE: &str = "reconcile.repaired_remote";
}

/// Unified fields that are associations, synced through the associations API rather than as
/// properties; the property merge leaves them alone.
pub const ASSOCIATION_FIELDS: [&str; 2] = ["company_id", "contact_ids"];

/// Everything a worker step needs: the store, the mappings, the HubSpot client and settings.
/// Cheap to clone.
#[derive(Clone)]
pub struct Engine {
    /// hubsync's database.
    pub store: Arc<dyn Store>,
    /// The unified ⇄ HubSpot mappings.
    pub mappings: Arc<Mappings>,
    /// The HubSpot client, with one registered [`PortalClient`] per connected portal.
    pub hubspot: HubspotClient,
    /// Tunables.
    pub settings: Arc<EngineSettings>,
}

impl Engine {
    /// A portal's HubSpot client.
    pub fn api(&self, portal: PortalId) -> Result<PortalClient, EngineError> {
        self.hubspot
            .get(portal)
            .ok_or(EngineError::PortalNotConnected(portal))
    }

    /// The properties to request when reading a type: the mapped ones plus hubsync's own.
    pub fn read_properties(&self, object_type: ObjectType) -> Vec<String> {
        let mut props = self.mappings.synced_properties(object_type).to_vec();
        for p in [
            hubsync_hubspot::model::HUBSYNC_ID_PROPERTY,
            hubsync_hubspot::model::HUBSYNC_ORIGIN_PROPERTY,
        ] {
            if !props.iter().any(|q| q == p) {
                props.push(p.to_owned());
            }
        }
        props.push(object_type.last_modified_property().to_owned());
        props
    }
}

/// Strips association fields from a record's fields before a property merge.
pub(crate) fn property_fields(fields: &hubsync_core::FieldMap) -> hubsync_core::FieldMap {
    fields
        .iter()
        .filter(|(k, _)| !ASSOCIATION_FIELDS.contains(k))
        .map(|(k, v)| (k.to_owned(), v.clone()))
        .collect()
}

/// Milliseconds since the Unix epoch, now.
pub(crate) fn now_ms() -> i64 {
    let now = time::OffsetDateTime::now_utc();
    (now.unix_timestamp_nanos() / 1_000_000) as i64
}
