//! The [`Store`] trait: every domain operation hubsync performs on its database.

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use hubsync_core::{Changes, HubspotId, LocalId, ObjectType, PortalId};
use serde_json::Value;

use crate::error::StoreError;
use crate::model::{
    ApiKey, AppDelivery, AppEndpoint, ApplyOp, ApplyResult, ConflictRecord, DeadLetter, Fence,
    Filter, InboxEvent, InboxFailure, InboxInsert, InboxItem, ItemRange, LocalRecord, Millis,
    NewDeadLetter, OutboundAck, OutboundFailure, OutboxClaim, OutboxOp, Portal, PortalAuth,
    PortalStatus, QueueDepths, SyncState,
};

/// hubsync's database, behind domain operations (never SQL). Implemented by
/// [`SqliteStore`](crate::SqliteStore) and [`PgStore`](crate::PgStore); object-safe, so the
/// engine holds an `Arc<dyn Store>` from [`connect`](crate::connect).
///
/// Every method that writes more than one row does so in one transaction. Writes that carry a
/// [`Fence`] fail with [`StoreError::Fenced`] when the portal's lease has since moved on.
#[async_trait]
pub trait Store: crate::association::AssociationStore + Send + Sync + std::fmt::Debug {
    /// The backend's name (`sqlite`, `postgres`).
    fn backend(&self) -> &'static str;

    /// Closes the connections. The store is unusable afterwards.
    async fn close(&self);

    // ----- portals ---------------------------------------------------------------------------

    /// Adds a portal, or updates the name, app, auth and config of an existing one (its status
    /// is kept).
    async fn upsert_portal(&self, portal: &Portal) -> Result<(), StoreError>;
    /// One portal.
    async fn get_portal(&self, portal: PortalId) -> Result<Option<Portal>, StoreError>;
    /// Every portal, by id.
    async fn list_portals(&self) -> Result<Vec<Portal>, StoreError>;
    /// Replaces a portal's credentials. `false` if the portal is unknown.
    async fn set_portal_auth(
        &self,
        portal: PortalId,
        auth: &PortalAuth,
    ) -> Result<bool, StoreError>;
    /// Sets a portal's status and its reason. `false` if the portal is unknown.
    async fn set_portal_status(
        &self,
        portal: PortalId,
        status: PortalStatus,
        reason: Option<&str>,
    ) -> Result<bool, StoreError>;
    /// Removes a portal and everything stored for it (records, queues, state). `false` if it
    /// was unknown.
    async fn delete_portal(&self, portal: PortalId) -> Result<bool, StoreError>;

    // ----- records (the app tables) ----------------------------------------------------------

    /// One record by its local id, deleted or not.
    async fn get_record(
        &self,
        portal: PortalId,
        object_type: ObjectType,
        local_id: LocalId,
    ) -> Result<Option<LocalRecord>, StoreError>;
    /// Several records by local id (missing ids are skipped), in id order.
    async fn get_records(
        &self,
        portal: PortalId,
        object_type: ObjectType,
        local_ids: &[LocalId],
    ) -> Result<Vec<LocalRecord>, StoreError>;
    /// The record holding a HubSpot id, following merge aliases to the survivor. Prefers a
    /// live row over a soft-deleted one.
    async fn find_by_hubspot_id(
        &self,
        portal: PortalId,
        object_type: ObjectType,
        hubspot_id: HubspotId,
    ) -> Result<Option<LocalRecord>, StoreError>;
    /// [`Store::find_by_hubspot_id`] for many ids at once (a page of an import, a batch of
    /// events): keyed by the id asked for; ids no row holds are absent.
    async fn find_by_hubspot_ids(
        &self,
        portal: PortalId,
        object_type: ObjectType,
        hubspot_ids: &[HubspotId],
    ) -> Result<BTreeMap<HubspotId, LocalRecord>, StoreError> {
        let mut found = BTreeMap::new();
        for &id in hubspot_ids {
            if let Some(record) = self.find_by_hubspot_id(portal, object_type, id).await? {
                found.insert(id, record);
            }
        }
        Ok(found)
    }
    /// Live (not deleted) records whose `field` matches `value`, for linking on first sync:
    /// for a list column (`email_addresses`) any element matches, otherwise the value must be
    /// equal (`domain`). Text matches ignore ASCII case. At most 10, by id.
    async fn find_by_key(
        &self,
        portal: PortalId,
        object_type: ObjectType,
        field: &str,
        value: &Value,
    ) -> Result<Vec<LocalRecord>, StoreError>;
    /// A page of records with `id > after`, in id order, matching every filter. Deleted rows
    /// are included unless a filter (`deleted_at is_null`) excludes them.
    async fn list_records(
        &self,
        portal: PortalId,
        object_type: ObjectType,
        after: Option<LocalId>,
        limit: u32,
        filters: &[Filter],
    ) -> Result<Vec<LocalRecord>, StoreError>;
    /// The number of records matching every filter.
    async fn count_records(
        &self,
        portal: PortalId,
        object_type: ObjectType,
        filters: &[Filter],
    ) -> Result<u64, StoreError>;
    /// Inserts a record as the app would (captured into the outbox), e.g. for the REST API.
    async fn insert_record(
        &self,
        portal: PortalId,
        object_type: ObjectType,
        fields: &hubsync_core::FieldMap,
    ) -> Result<LocalRecord, StoreError>;
    /// Changes a record as the app would (captured). `None` if there is no such row.
    async fn update_record(
        &self,
        portal: PortalId,
        object_type: ObjectType,
        local_id: LocalId,
        changes: &Changes,
    ) -> Result<Option<LocalRecord>, StoreError>;
    /// Soft-deletes a record as the app would (captured). `false` if there is no live row.
    async fn delete_record(
        &self,
        portal: PortalId,
        object_type: ObjectType,
        local_id: LocalId,
    ) -> Result<bool, StoreError>;

    // ----- applying HubSpot's state ----------------------------------------------------------

    /// Applies a batch from HubSpot in one transaction, without capturing any of it: the ops in
    /// order, then deletes the inbox rows `done_inbox_ids` (the events the batch consumed).
    async fn apply_inbound(
        &self,
        portal: PortalId,
        ops: Vec<ApplyOp>,
        done_inbox_ids: &[i64],
        fence: Option<Fence>,
    ) -> Result<ApplyResult, StoreError>;

    // ----- outbox ----------------------------------------------------------------------------

    /// Queues a record for HubSpot (the reconciler re-queueing local drift). Returns the item id.
    async fn enqueue_outbox(
        &self,
        portal: PortalId,
        object_type: ObjectType,
        local_id: LocalId,
        op: OutboxOp,
    ) -> Result<i64, StoreError>;
    /// Claims up to `limit` records with pending items, oldest first, for `lease`: all pending
    /// items of a record come as one claim. A record with items claimed by someone else is
    /// skipped; items whose lease expired (a worker died) are claimable again.
    async fn claim_outbox(
        &self,
        portal: PortalId,
        limit: u32,
        lease: Duration,
        worker: &str,
    ) -> Result<Vec<OutboxClaim>, StoreError>;
    /// Acknowledges pushes, in one transaction: per record, deletes its items up to the claimed
    /// id (a capture during the push stays queued), records the new sync state and writes the
    /// HubSpot id to the app row without capturing it.
    async fn ack_outbound(
        &self,
        portal: PortalId,
        acks: Vec<OutboundAck>,
        fence: Option<Fence>,
    ) -> Result<(), StoreError>;
    /// Records failed pushes, in one transaction: a retryable failure releases its items until
    /// `retry_at`; any other moves them to the dead-letter table. Refused
    /// ([`StoreError::Fenced`]) if `fence` is given and the portal's lease has moved past it.
    async fn fail_outbound(
        &self,
        portal: PortalId,
        failures: Vec<OutboundFailure>,
        fence: Option<Fence>,
    ) -> Result<(), StoreError>;
    /// Returns claimed items unprocessed (shutdown), without counting an attempt. Fenced like
    /// [`Store::fail_outbound`].
    async fn release_outbox(
        &self,
        portal: PortalId,
        ranges: &[ItemRange],
        fence: Option<Fence>,
    ) -> Result<(), StoreError>;
    /// The record's `hubsync_id`, generated and persisted on first use, so that a create retried
    /// after a crash reuses it.
    async fn ensure_hubsync_id(
        &self,
        portal: PortalId,
        object_type: ObjectType,
        local_id: LocalId,
    ) -> Result<String, StoreError>;
    /// Portals with claimable outbox items.
    async fn portals_with_pending_outbox(&self) -> Result<Vec<PortalId>, StoreError>;
    /// Waits until an app write is captured (PostgreSQL: `NOTIFY hubsync_outbox`) or `timeout`
    /// passes. `true` if woken by a capture. Backends without notifications just wait out the
    /// timeout, so callers poll with it.
    async fn wait_for_outbox(&self, timeout: Duration) -> Result<bool, StoreError>;

    // ----- inbox -----------------------------------------------------------------------------

    /// Stores raw events in one transaction, each identity once per portal.
    async fn insert_inbox(&self, events: &[InboxEvent]) -> Result<InboxInsert, StoreError>;
    /// Claims up to `limit` events of a portal, oldest first, for `lease`.
    async fn claim_inbox(
        &self,
        portal: PortalId,
        limit: u32,
        lease: Duration,
        worker: &str,
    ) -> Result<Vec<InboxItem>, StoreError>;
    /// Records events that failed: a retryable one is released until `retry_at`, any other is
    /// moved to the dead-letter table (with the raw event). Fenced like [`Store::fail_outbound`].
    async fn fail_inbox(
        &self,
        portal: PortalId,
        failures: Vec<InboxFailure>,
        fence: Option<Fence>,
    ) -> Result<(), StoreError>;
    /// Returns claimed events unprocessed, without counting an attempt. Fenced like
    /// [`Store::fail_outbound`].
    async fn release_inbox(
        &self,
        portal: PortalId,
        ids: &[i64],
        fence: Option<Fence>,
    ) -> Result<(), StoreError>;
    /// Portals with claimable inbox events.
    async fn portals_with_pending_inbox(&self) -> Result<Vec<PortalId>, StoreError>;

    // ----- sync state ------------------------------------------------------------------------

    /// A record's sync state.
    async fn get_sync_state(
        &self,
        portal: PortalId,
        object_type: ObjectType,
        local_id: LocalId,
    ) -> Result<Option<SyncState>, StoreError>;
    /// Several records' sync states (missing ones skipped).
    async fn get_sync_states(
        &self,
        portal: PortalId,
        object_type: ObjectType,
        local_ids: &[LocalId],
    ) -> Result<Vec<SyncState>, StoreError>;
    /// Several records, each with its sync state (`None` when it has none), in id order;
    /// missing records are skipped. What the outbound worker loads for a claim.
    async fn get_records_with_sync_states(
        &self,
        portal: PortalId,
        object_type: ObjectType,
        local_ids: &[LocalId],
    ) -> Result<Vec<(LocalRecord, Option<SyncState>)>, StoreError> {
        let records = self.get_records(portal, object_type, local_ids).await?;
        let states = self.get_sync_states(portal, object_type, local_ids).await?;
        Ok(pair_with_states(records, states))
    }
    /// The sync state holding a HubSpot id, following merge aliases.
    async fn get_sync_state_by_hubspot_id(
        &self,
        portal: PortalId,
        object_type: ObjectType,
        hubspot_id: HubspotId,
    ) -> Result<Option<SyncState>, StoreError>;
    /// The id `hubspot_id` resolves to after HubSpot merges (itself if never merged).
    async fn resolve_alias(
        &self,
        portal: PortalId,
        object_type: ObjectType,
        hubspot_id: HubspotId,
    ) -> Result<HubspotId, StoreError>;

    // ----- dead letters ----------------------------------------------------------------------

    /// Parks a failed item (the capture and reconcile paths); [`Store::add_dead_letter_fenced`]
    /// without a fence.
    async fn add_dead_letter(
        &self,
        portal: PortalId,
        letter: &NewDeadLetter,
    ) -> Result<i64, StoreError> {
        self.add_dead_letter_fenced(portal, letter, None).await
    }
    /// Parks a failed item; for a portal's workers, fenced like [`Store::fail_outbound`].
    async fn add_dead_letter_fenced(
        &self,
        portal: PortalId,
        letter: &NewDeadLetter,
        fence: Option<Fence>,
    ) -> Result<i64, StoreError>;
    /// Dead letters, newest first, with `id < before` when given.
    async fn list_dead_letters(
        &self,
        portal: PortalId,
        before: Option<i64>,
        limit: u32,
    ) -> Result<Vec<DeadLetter>, StoreError>;
    /// One dead letter.
    async fn get_dead_letter(
        &self,
        portal: PortalId,
        id: i64,
    ) -> Result<Option<DeadLetter>, StoreError>;
    /// Re-queues a dead letter (outbound, capture and reconcile ones to the outbox, inbound
    /// ones to the inbox) and removes it, in one transaction. `false` if there is no such dead
    /// letter or it names nothing to re-queue.
    async fn retry_dead_letter(&self, portal: PortalId, id: i64) -> Result<bool, StoreError>;
    /// Deletes a dead letter. `false` if there is none.
    async fn drop_dead_letter(&self, portal: PortalId, id: i64) -> Result<bool, StoreError>;

    // ----- conflicts, cursors, counters, stats -----------------------------------------------

    /// Recorded conflicts, newest first, with `id < before` when given.
    async fn list_conflicts(
        &self,
        portal: PortalId,
        before: Option<i64>,
        limit: u32,
    ) -> Result<Vec<ConflictRecord>, StoreError>;
    /// A cursor's value.
    async fn get_cursor(&self, portal: PortalId, name: &str) -> Result<Option<String>, StoreError>;
    /// Sets a cursor. Fenced like [`Store::fail_outbound`].
    async fn set_cursor(
        &self,
        portal: PortalId,
        name: &str,
        value: &str,
        fence: Option<Fence>,
    ) -> Result<(), StoreError>;
    /// Adds `delta` to a durable counter.
    async fn add_counter(&self, portal: PortalId, name: &str, delta: i64)
    -> Result<(), StoreError>;
    /// Every counter of a portal.
    async fn counters(&self, portal: PortalId) -> Result<BTreeMap<String, i64>, StoreError>;
    /// Queue depths, for the status page.
    async fn queue_depths(&self, portal: PortalId) -> Result<QueueDepths, StoreError>;

    // ----- API keys --------------------------------------------------------------------------

    /// Stores an API key by its hash.
    async fn create_api_key(
        &self,
        name: &str,
        key_hash: &str,
        portals: &[PortalId],
    ) -> Result<ApiKey, StoreError>;
    /// The key with this hash.
    async fn find_api_key(&self, key_hash: &str) -> Result<Option<ApiKey>, StoreError>;
    /// Every key.
    async fn list_api_keys(&self) -> Result<Vec<ApiKey>, StoreError>;
    /// Deletes a key. `false` if there is none.
    async fn revoke_api_key(&self, id: i64) -> Result<bool, StoreError>;

    // ----- app webhooks ----------------------------------------------------------------------

    /// Registers an endpoint for a portal's change notifications.
    async fn add_app_endpoint(
        &self,
        portal: PortalId,
        url: &str,
        secret: &str,
    ) -> Result<AppEndpoint, StoreError>;
    /// A portal's endpoints.
    async fn list_app_endpoints(&self, portal: PortalId) -> Result<Vec<AppEndpoint>, StoreError>;
    /// Removes an endpoint and its pending deliveries. `false` if there is none.
    async fn remove_app_endpoint(&self, portal: PortalId, id: i64) -> Result<bool, StoreError>;
    /// Queues `payload` for every endpoint of the portal. Returns the number of deliveries.
    async fn enqueue_app_event(&self, portal: PortalId, payload: &Value)
    -> Result<u64, StoreError>;
    /// Claims up to `limit` due deliveries of any portal for `lease` (an unanswered claim is
    /// retried after the lease).
    async fn claim_app_deliveries(
        &self,
        limit: u32,
        lease: Duration,
    ) -> Result<Vec<AppDelivery>, StoreError>;
    /// Marks a delivery done.
    async fn complete_app_delivery(&self, id: i64) -> Result<(), StoreError>;
    /// Reschedules a failed delivery, counting the attempt.
    async fn retry_app_delivery(&self, id: i64, next_attempt_at: Millis) -> Result<(), StoreError>;

    // ----- leases (scale-out) ----------------------------------------------------------------

    /// Takes a portal's lease for `ttl` if it is free, expired or already `owner`'s. Returns the
    /// new fence, or `None` if another owner holds it. Expiry is reckoned on the database's clock
    /// where there is one server (PostgreSQL), so the callers' clocks need not agree.
    async fn try_acquire_lease(
        &self,
        portal: PortalId,
        owner: &str,
        ttl: Duration,
    ) -> Result<Option<Fence>, StoreError>;
    /// Extends a held lease. `false` if `owner` no longer holds it with `fence`.
    async fn renew_lease(
        &self,
        portal: PortalId,
        owner: &str,
        fence: Fence,
        ttl: Duration,
    ) -> Result<bool, StoreError>;
    /// Gives a lease up.
    async fn release_lease(
        &self,
        portal: PortalId,
        owner: &str,
        fence: Fence,
    ) -> Result<(), StoreError>;
}

/// Pairs each record with its sync state, if any.
pub(crate) fn pair_with_states(
    records: Vec<LocalRecord>,
    states: Vec<SyncState>,
) -> Vec<(LocalRecord, Option<SyncState>)> {
    let mut states: BTreeMap<LocalId, SyncState> =
        states.into_iter().map(|s| (s.local_id, s)).collect();
    records
        .into_iter()
        .map(|record| {
            let state = states.remove(&record.local_id);
            (record, state)
        })
        .collect()
}
