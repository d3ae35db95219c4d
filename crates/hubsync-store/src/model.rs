//! The domain types the [`Store`](crate::Store) trait speaks: records, queue items, sync
//! state, dead letters, conflicts, portals, keys and leases. Times are epoch milliseconds.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;

use hubsync_core::{
    AppId, Changes, Conflict, FieldMap, Fingerprint, HubspotId, LocalId, ObjectType, PortalId,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Milliseconds since the Unix epoch.
pub type Millis = i64;

/// The current time in epoch milliseconds.
pub fn now_ms() -> Millis {
    let now = time::OffsetDateTime::now_utc();
    i64::try_from(now.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

// ---------------------------------------------------------------------------------------------
// Records
// ---------------------------------------------------------------------------------------------

/// One row of an app table, as the merge sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct LocalRecord {
    /// The row's primary key.
    pub local_id: LocalId,
    /// The HubSpot id, once the record exists there.
    pub hubspot_id: Option<HubspotId>,
    /// The unified fields: every synced column with a value, `custom_fields` flattened to
    /// `custom_fields.<name>`. Empty lists and objects count as no value.
    pub fields: FieldMap,
    /// When the row was created (epoch ms).
    pub created_at: Millis,
    /// When the row was last changed (epoch ms), as the app or hubsync wrote it.
    pub updated_at: Millis,
    /// Whether the row is soft-deleted (`deleted_at` set).
    pub deleted: bool,
}

/// A comparison in a record filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FilterOp {
    /// Equal. Strings compare ignoring case on text columns, as HubSpot's search does; a
    /// number compared with a custom field compares numerically (see [`FilterOp::Gte`]).
    Eq,
    /// Not equal (rows without a value do not match). Ignores case like [`FilterOp::Eq`].
    Neq,
    /// Less than.
    Lt,
    /// Less than or equal.
    Lte,
    /// Greater than.
    Gt,
    /// Greater than or equal. With a number operand on a custom field, the stored value
    /// compares as a number whether it is a JSON number or a string spelling one (`"60000"`);
    /// a value that is not a number matches no numeric comparison. The same holds for
    /// `Eq`, `Neq`, `Lt`, `Lte` and `Gt`.
    Gte,
    /// Equal to one of a list of values.
    In,
    /// A list column holds the value, or a text column contains it as a substring. Strings
    /// match ignoring case (`email_addresses contains "Ann@X.example"` finds `ann@x.example`).
    Contains,
    /// Has no value.
    IsNull,
    /// Has a value.
    NotNull,
}

/// One condition on a record listing. `field` is a column name (`email_addresses`,
/// `updated_at`, `deleted_at`, …) or `custom_fields.<name>`; values are always bound as
/// parameters, never spliced into SQL.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Filter {
    /// The field compared.
    pub field: String,
    /// The comparison.
    pub op: FilterOp,
    /// The operand (a list for [`FilterOp::In`], ignored for the null checks).
    #[serde(default)]
    pub value: Value,
}

impl Filter {
    /// A filter `field op value`.
    pub fn new(field: impl Into<String>, op: FilterOp, value: Value) -> Self {
        Filter {
            field: field.into(),
            op,
            value,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Sync state
// ---------------------------------------------------------------------------------------------

/// What hubsync knows about one record's last sync.
#[derive(Debug, Clone, PartialEq)]
pub struct SyncState {
    /// The object type.
    pub object_type: ObjectType,
    /// The app row.
    pub local_id: LocalId,
    /// The HubSpot record, once created.
    pub hubspot_id: Option<HubspotId>,
    /// The id hubsync creates the record by (HubSpot's unique `hubsync_id` property); set once,
    /// before the first create, so that a retried create is an upsert.
    pub hubsync_id: Option<String>,
    /// The last synced state (the merge base); `None` if never synced.
    pub base: Option<FieldMap>,
    /// HubSpot's change time for each base field (epoch ms).
    pub base_ts: BTreeMap<String, Millis>,
    /// Fingerprint of the last state sent to HubSpot.
    pub fp_sent: Option<Fingerprint>,
    /// Fingerprint of the last state received from HubSpot.
    pub fp_received: Option<Fingerprint>,
    /// The origin marker value of our last write to HubSpot.
    pub last_origin: Option<String>,
    /// HubSpot's last-modified time of the record when last seen (epoch ms).
    pub remote_updated_at: Option<Millis>,
    /// When the record was last synced (epoch ms).
    pub synced_at: Option<Millis>,
}

// ---------------------------------------------------------------------------------------------
// Applying HubSpot's state
// ---------------------------------------------------------------------------------------------

/// One write of an inbound batch; see [`Store::apply_inbound`](crate::Store::apply_inbound).
/// None of these writes is captured into the outbox.
#[derive(Debug, Clone, PartialEq)]
pub enum ApplyOp {
    /// Refuse the whole batch ([`StoreError::Stale`](crate::StoreError::Stale)) unless the
    /// record is still as the planner read it. Every precondition of a batch is checked against
    /// the state before any of its ops runs, which is the state the plan was made on.
    Require(Precondition),
    /// Write HubSpot's fields to the app row and record the new sync state.
    Upsert(InboundUpsert),
    /// HubSpot deleted a record: soft-delete its app row (alias-aware), drop its pending,
    /// unclaimed outbox items and its sync state.
    Delete {
        /// The object type.
        object_type: ObjectType,
        /// The deleted HubSpot record.
        hubspot_id: HubspotId,
    },
    /// HubSpot merged records into `survivor`: the merged ids become aliases of the survivor.
    /// If the survivor has no app row, the first merged id's row is re-pointed to it; every
    /// other row of a merged id is retired (soft-deleted, fields kept).
    Merge {
        /// The object type.
        object_type: ObjectType,
        /// The surviving HubSpot id.
        survivor: HubspotId,
        /// The ids merged into it.
        merged: Vec<HubspotId>,
    },
    /// Record settled conflicts of one record.
    Conflicts {
        /// The object type.
        object_type: ObjectType,
        /// The app row, if any.
        local_id: Option<LocalId>,
        /// The HubSpot record, if any.
        hubspot_id: Option<HubspotId>,
        /// The conflicts, as the merge settled them.
        conflicts: Vec<Conflict>,
    },
    /// Add to a durable counter.
    Counter {
        /// The counter name (`echo.change_source`, `conflicts`, …).
        name: String,
        /// The amount to add.
        delta: i64,
    },
    /// Queue a record's local state for HubSpot (a local edit that won the merge).
    Enqueue {
        /// The object type.
        object_type: ObjectType,
        /// The app row.
        local_id: LocalId,
        /// Upsert or delete.
        op: OutboxOp,
    },
    /// Queue a signed app webhook with this payload for every endpoint of the portal.
    NotifyApp {
        /// The event body.
        payload: Value,
    },
    /// Advance a cursor together with the work it covers.
    SetCursor {
        /// The cursor name.
        name: String,
        /// The new value.
        value: String,
    },
}

/// What a plan took for granted about one record; see [`ApplyOp::Require`].
///
/// A merge decided on a stale read would overwrite whatever came in between (an app edit, a
/// newer HubSpot state applied by another worker, an outbound acknowledgement), so the apply
/// checks the planner's view inside its transaction and the planner looks again on a mismatch.
#[derive(Debug, Clone, PartialEq)]
pub enum Precondition {
    /// No app row, live or deleted, holds this HubSpot id (alias-aware): the plan creates one.
    NoRow {
        /// The object type.
        object_type: ObjectType,
        /// The HubSpot record.
        hubspot_id: HubspotId,
    },
    /// The app row and its sync state are unchanged since they were read.
    Unchanged {
        /// The object type.
        object_type: ObjectType,
        /// The app row.
        local_id: LocalId,
        /// The row's `updated_at` as read (every app write moves it).
        updated_at: Millis,
        /// The record's sync state as read (`None`: it had none); boxed, it is the large part.
        sync: Option<Box<SyncState>>,
    },
}

impl Precondition {
    /// The record it is about, for messages.
    pub fn record(&self) -> String {
        match self {
            Precondition::NoRow { hubspot_id, .. } => format!("hubspot:{hubspot_id}"),
            Precondition::Unchanged { local_id, .. } => format!("local:{}", local_id.0),
        }
    }

    /// The object type it is about.
    pub fn object_type(&self) -> ObjectType {
        match self {
            Precondition::NoRow { object_type, .. }
            | Precondition::Unchanged { object_type, .. } => *object_type,
        }
    }
}

/// Writes HubSpot's state of one record to its app row.
#[derive(Debug, Clone, PartialEq)]
pub struct InboundUpsert {
    /// The object type.
    pub object_type: ObjectType,
    /// The app row to update; `None` creates one (or reuses the row already holding
    /// `hubspot_id`).
    pub local_id: Option<LocalId>,
    /// The HubSpot record.
    pub hubspot_id: HubspotId,
    /// The fields to write (`null` clears); for a new row, all of its fields.
    pub changes: Changes,
    /// The new merge base (what both sides hold after this batch).
    pub base: FieldMap,
    /// HubSpot's change time per base field (epoch ms).
    pub base_ts: BTreeMap<String, Millis>,
    /// Fingerprint of the received state.
    pub fp_received: Option<Fingerprint>,
    /// HubSpot's last-modified time of the record (epoch ms).
    pub remote_updated_at: Option<Millis>,
}

/// What [`Store::apply_inbound`](crate::Store::apply_inbound) did, op by op.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApplyResult {
    /// For each op, in order: the app row it wrote (`None` when it touched no row).
    pub local_ids: Vec<Option<LocalId>>,
}

// ---------------------------------------------------------------------------------------------
// Outbox
// ---------------------------------------------------------------------------------------------

/// What an outbox item asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OutboxOp {
    /// Create or update the record in HubSpot.
    Upsert,
    /// Archive the record in HubSpot.
    Delete,
}

impl OutboxOp {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            OutboxOp::Upsert => "upsert",
            OutboxOp::Delete => "delete",
        }
    }
}

impl FromStr for OutboxOp {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "upsert" => Ok(OutboxOp::Upsert),
            "delete" => Ok(OutboxOp::Delete),
            other => Err(format!("unknown outbox op `{other}`")),
        }
    }
}

/// All pending outbox items of one record, claimed together.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxClaim {
    /// The object type.
    pub object_type: ObjectType,
    /// The app row.
    pub local_id: LocalId,
    /// The op of the latest item: what the record needs now.
    pub op: OutboxOp,
    /// The highest claimed item id; acknowledge up to it, so later captures stay queued.
    pub max_item_id: i64,
    /// How many items were coalesced.
    pub items: u32,
    /// The HubSpot id captured with the items (from the latest item that had one): what a
    /// delete of a row that is gone needs.
    pub hubspot_id: Option<HubspotId>,
    /// When the latest item was captured (epoch ms).
    pub captured_at: Millis,
    /// How many times these items were claimed before, this claim included.
    pub attempts: u32,
}

impl OutboxClaim {
    /// The item range this claim covers, for [`Store::release_outbox`](crate::Store::release_outbox).
    pub fn range(&self) -> ItemRange {
        ItemRange {
            object_type: self.object_type,
            local_id: self.local_id,
            up_to_item_id: self.max_item_id,
        }
    }
}

/// A record's outbox items up to an id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ItemRange {
    /// The object type.
    pub object_type: ObjectType,
    /// The app row.
    pub local_id: LocalId,
    /// The highest item id covered.
    pub up_to_item_id: i64,
}

/// HubSpot accepted a record: remove its items up to `range.up_to_item_id` and record the new
/// sync state, in one transaction.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboundAck {
    /// The items acknowledged.
    pub range: ItemRange,
    /// What HubSpot now holds.
    pub outcome: AckOutcome,
}

/// What an acknowledged push left in HubSpot.
#[derive(Debug, Clone, PartialEq)]
pub enum AckOutcome {
    /// The record was created or updated.
    Written {
        /// The HubSpot id (new on a create); also written to the app row, uncaptured.
        hubspot_id: HubspotId,
        /// The new merge base: the fields sent, as HubSpot now holds them.
        base: FieldMap,
        /// HubSpot's change time per base field (epoch ms).
        base_ts: BTreeMap<String, Millis>,
        /// Fingerprint of the state sent.
        fp_sent: Fingerprint,
        /// The origin marker value written with it.
        origin: Option<String>,
        /// HubSpot's last-modified time from the response (epoch ms).
        remote_updated_at: Option<Millis>,
        /// `Some`: an update that wrote only these fields. The stored base takes `base`'s
        /// values (and `base_ts`'s times) for them and keeps its others as they are when the
        /// acknowledgement commits — an inbound change applied since the claim stays in the
        /// base. `None`: `base` replaces the stored base (a create, a relink).
        written_fields: Option<BTreeSet<String>>,
    },
    /// The record was archived in HubSpot (or never existed there): its sync state is removed.
    Deleted,
}

/// A push that failed for one record.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboundFailure {
    /// The items that failed.
    pub range: ItemRange,
    /// Why, for people (`HubSpot 400: Property values were not valid`).
    pub reason: String,
    /// A stable category for grouping (`validation`, `auth`, `mapping`, …).
    pub category: String,
    /// `Some(t)`: retryable, retry no earlier than `t` (epoch ms); `None`: dead-letter the items.
    pub retry_at: Option<Millis>,
    /// Context kept with a dead letter (the request sent, HubSpot's answer).
    pub payload: Value,
}

// ---------------------------------------------------------------------------------------------
// Inbox
// ---------------------------------------------------------------------------------------------

/// A raw inbound event (one webhook event, or one change found by the reconciler).
#[derive(Debug, Clone, PartialEq)]
pub struct InboxEvent {
    /// The portal it belongs to.
    pub portal: PortalId,
    /// HubSpot's subscription type (`contact.propertyChange`).
    pub subscription_type: String,
    /// The object type, when the event names one of ours.
    pub object_type: Option<ObjectType>,
    /// The HubSpot record.
    pub object_id: Option<HubspotId>,
    /// The changed property, for property changes.
    pub property_name: Option<String>,
    /// When it happened in HubSpot (epoch ms).
    pub occurred_at: Millis,
    /// HubSpot's eventId (not unique on its own).
    pub event_id: i64,
    /// The raw event.
    pub payload: Value,
}

impl InboxEvent {
    /// The deduplication key: `subscriptionType|objectId|propertyName|occurredAt|eventId`. A
    /// redelivered event has the same identity and is stored once.
    pub fn identity(&self) -> String {
        let object = self.object_id.map(|id| id.to_string()).unwrap_or_default();
        let property = self.property_name.as_deref().unwrap_or_default();
        format!(
            "{}|{object}|{property}|{}|{}",
            self.subscription_type, self.occurred_at, self.event_id
        )
    }
}

/// What [`Store::insert_inbox`](crate::Store::insert_inbox) stored.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct InboxInsert {
    /// New events stored.
    pub inserted: u64,
    /// Events already stored (redeliveries), skipped.
    pub duplicates: u64,
}

/// A claimed inbox event.
#[derive(Debug, Clone, PartialEq)]
pub struct InboxItem {
    /// The inbox row id.
    pub id: i64,
    /// The portal.
    pub portal: PortalId,
    /// The deduplication key.
    pub identity: String,
    /// HubSpot's subscription type.
    pub subscription_type: String,
    /// The object type, when known.
    pub object_type: Option<ObjectType>,
    /// The HubSpot record.
    pub object_id: Option<HubspotId>,
    /// When it happened in HubSpot (epoch ms).
    pub occurred_at: Millis,
    /// The raw event.
    pub payload: Value,
    /// When hubsync received it (epoch ms).
    pub received_at: Millis,
    /// How many times it was claimed, this claim included.
    pub attempts: u32,
}

/// An inbox event that could not be applied.
#[derive(Debug, Clone, PartialEq)]
pub struct InboxFailure {
    /// The inbox row id.
    pub id: i64,
    /// Why, for people.
    pub reason: String,
    /// A stable category for grouping.
    pub category: String,
    /// `Some(t)`: retry no earlier than `t` (epoch ms); `None`: dead-letter it.
    pub retry_at: Option<Millis>,
}

// ---------------------------------------------------------------------------------------------
// Dead letters, conflicts, stats
// ---------------------------------------------------------------------------------------------

/// Which path a dead letter came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeadLetterSource {
    /// A push to HubSpot (retry re-queues the record in the outbox).
    Outbound,
    /// An inbound event (retry puts the raw event back in the inbox).
    Inbound,
    /// The reconciler (retry re-queues the record in the outbox when it names one).
    Reconcile,
    /// A captured app write the mapping could not translate (retry re-queues the record).
    Capture,
}

impl DeadLetterSource {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            DeadLetterSource::Outbound => "outbound",
            DeadLetterSource::Inbound => "inbound",
            DeadLetterSource::Reconcile => "reconcile",
            DeadLetterSource::Capture => "capture",
        }
    }
}

impl FromStr for DeadLetterSource {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "outbound" => Ok(DeadLetterSource::Outbound),
            "inbound" => Ok(DeadLetterSource::Inbound),
            "reconcile" => Ok(DeadLetterSource::Reconcile),
            "capture" => Ok(DeadLetterSource::Capture),
            other => Err(format!("unknown dead-letter source `{other}`")),
        }
    }
}

/// A failed item to park in the dead-letter table.
#[derive(Debug, Clone, PartialEq)]
pub struct NewDeadLetter {
    /// Where it failed.
    pub source: DeadLetterSource,
    /// The object type, when known.
    pub object_type: Option<ObjectType>,
    /// The app row, when known.
    pub local_id: Option<LocalId>,
    /// The HubSpot record, when known.
    pub hubspot_id: Option<HubspotId>,
    /// Why, for people.
    pub reason: String,
    /// A stable category for grouping.
    pub category: String,
    /// Context (for inbound: the raw event).
    pub payload: Value,
    /// Attempts made before giving up.
    pub attempts: u32,
}

/// A stored dead letter.
#[derive(Debug, Clone, PartialEq)]
pub struct DeadLetter {
    /// The row id.
    pub id: i64,
    /// The portal.
    pub portal: PortalId,
    /// Everything recorded about the failure.
    pub letter: NewDeadLetter,
    /// When it was parked (epoch ms).
    pub created_at: Millis,
}

/// A recorded conflict.
#[derive(Debug, Clone, PartialEq)]
pub struct ConflictRecord {
    /// The row id.
    pub id: i64,
    /// The portal.
    pub portal: PortalId,
    /// The object type.
    pub object_type: ObjectType,
    /// The app row, if any.
    pub local_id: Option<LocalId>,
    /// The HubSpot record, if any.
    pub hubspot_id: Option<HubspotId>,
    /// The field, both values, both times, the policy and the winner.
    pub conflict: Conflict,
    /// When it was recorded (epoch ms).
    pub created_at: Millis,
}

/// Queue depths of one portal, for the status page.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct QueueDepths {
    /// Pending outbox items.
    pub outbox: u64,
    /// Pending inbox events.
    pub inbox: u64,
    /// Dead letters.
    pub dead_letters: u64,
    /// Recorded conflicts.
    pub conflicts: u64,
}

// ---------------------------------------------------------------------------------------------
// Portals
// ---------------------------------------------------------------------------------------------

/// Whether hubsync syncs a portal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PortalStatus {
    /// Syncing.
    Active,
    /// Its tokens were refused; waits for the user to authorize again.
    NeedsReauth,
    /// Stopped by hubsync (budget exhausted, repeated failures); see the status reason.
    Parked,
    /// Stopped by the user.
    Disabled,
}

impl PortalStatus {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            PortalStatus::Active => "active",
            PortalStatus::NeedsReauth => "needs_reauth",
            PortalStatus::Parked => "parked",
            PortalStatus::Disabled => "disabled",
        }
    }
}

impl FromStr for PortalStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "active" => Ok(PortalStatus::Active),
            "needs_reauth" => Ok(PortalStatus::NeedsReauth),
            "parked" => Ok(PortalStatus::Parked),
            "disabled" => Ok(PortalStatus::Disabled),
            other => Err(format!("unknown portal status `{other}`")),
        }
    }
}

/// A portal's credentials (token kind and tokens), opaque to the store. Its `Debug` output is
/// redacted so that it never reaches a log.
#[derive(Clone, Default, PartialEq)]
pub struct PortalAuth(pub Value);

impl fmt::Debug for PortalAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PortalAuth(<redacted>)")
    }
}

/// A connected HubSpot account.
#[derive(Debug, Clone, PartialEq)]
pub struct Portal {
    /// HubSpot's portal id.
    pub portal_id: PortalId,
    /// A display name.
    pub name: String,
    /// The HubSpot app that syncs it, if any.
    pub app_id: Option<AppId>,
    /// Credentials.
    pub auth: PortalAuth,
    /// Sync status.
    pub status: PortalStatus,
    /// Why the status is what it is.
    pub status_reason: Option<String>,
    /// Tier and per-portal configuration.
    pub config: Value,
    /// When it was added (epoch ms).
    pub created_at: Millis,
}

// ---------------------------------------------------------------------------------------------
// API keys, app webhooks, leases
// ---------------------------------------------------------------------------------------------

/// An API key of the unified REST API (only its SHA-256 hash is stored).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKey {
    /// The row id.
    pub id: i64,
    /// Lowercase hex SHA-256 of the key.
    pub key_hash: String,
    /// A display name.
    pub name: String,
    /// The portals the key may touch.
    pub portals: Vec<PortalId>,
    /// When it was created (epoch ms).
    pub created_at: Millis,
}

/// Where the app wants change notifications. `Debug` redacts the signing secret.
#[derive(Clone, PartialEq, Eq)]
pub struct AppEndpoint {
    /// The row id.
    pub id: i64,
    /// The portal whose changes it receives.
    pub portal: PortalId,
    /// The URL to POST to.
    pub url: String,
    /// The signing secret.
    pub secret: String,
}

impl fmt::Debug for AppEndpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AppEndpoint")
            .field("id", &self.id)
            .field("portal", &self.portal)
            .field("url", &self.url)
            .field("secret", &"<redacted>")
            .finish()
    }
}

/// A claimed app webhook delivery.
#[derive(Debug, Clone, PartialEq)]
pub struct AppDelivery {
    /// The delivery id.
    pub id: i64,
    /// Where to deliver it.
    pub endpoint: AppEndpoint,
    /// The body.
    pub payload: Value,
    /// Attempts made before this one.
    pub attempts: u32,
}

/// A fencing token: grows every time a portal's lease changes hands. A write carrying an older
/// fence than the lease's is refused with [`StoreError::Fenced`](crate::StoreError::Fenced).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Fence(pub i64);
