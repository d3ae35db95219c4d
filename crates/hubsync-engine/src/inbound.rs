//! The inbound worker: turns a portal's stored webhook events into local state.
//!
//! One step ([`apply_once`]) claims a batch of inbox events and:
//! 1. drops our own echoes by change source (`INTEGRATION` + our app id) and by origin marker
//!    (the `hubsync_origin` value we last wrote, and every event of that same write);
//! 2. coalesces the rest per object, keeping each property's latest value by `occurredAt`, so a
//!    late or duplicated event never overwrites a newer one;
//! 3. batch-reads (100 ids a call, general lane) what the events do not carry: created,
//!    restored and merged records, and records hubsync has no base for;
//! 4. hands the resulting HubSpot states to [`apply::plan`] — the
//!    fingerprint echo check and the three-way merge — and commits the plan together with the
//!    deletion of the consumed events, in one transaction.

use std::collections::{BTreeMap, BTreeSet};

use hubsync_core::{FieldMap, HubspotId, ObjectType, PortalId};
use hubsync_hubspot::model::{
    BatchReadRequest, HUBSYNC_ID_PROPERTY, HUBSYNC_ORIGIN_PROPERTY, HubspotObject, MAX_BATCH_INPUTS,
};
use hubsync_hubspot::webhooks::{EventKind, WebhookEvent};
use hubsync_store::{ApplyOp, Fence, InboxItem};
use serde_json::json;

use crate::apply::{self, RemoteState, counter};
use crate::lease::Tenure;
use crate::{Engine, EngineError, counters};

/// What one inbound step did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct InboundStep {
    /// Events claimed.
    pub claimed: usize,
    /// Events dropped as echoes by change source.
    pub echo_change_source: u64,
    /// Events dropped as echoes by origin marker.
    pub echo_origin: u64,
    /// Records dropped as echoes by fingerprint/base.
    pub echo_fingerprint: u64,
    /// Records applied locally.
    pub applied: u64,
    /// Records deleted locally.
    pub deleted: u64,
    /// Batch reads made.
    pub reads: u64,
    /// Conflicts settled.
    pub conflicts: u64,
    /// Events skipped (unknown subscription types).
    pub skipped: u64,
}

impl InboundStep {
    /// Whether the inbox had nothing to claim.
    pub fn is_idle(&self) -> bool {
        self.claimed == 0
    }
}

/// Everything the events say about one object.
#[derive(Default)]
struct ObjectEvents {
    /// Latest value and time of each property changed.
    properties: BTreeMap<String, (i64, Option<String>)>,
    /// Needs a fresh read (creation, restore, merge survivor).
    needs_read: bool,
    /// Latest deletion time, if deleted.
    deleted_at: Option<i64>,
    /// Latest time of anything but the deletion.
    latest_change: i64,
}

/// How many times a step works its events out again when records changed under its plan.
const STALE_RETRIES: u32 = 5;

/// Applies one step's worth of a portal's inbox.
pub async fn apply_once(engine: &Engine, portal: PortalId) -> Result<InboundStep, EngineError> {
    apply_once_fenced(engine, portal, None).await
}

/// [`apply_once`] for the holder of the portal's lease: the apply carries the tenure's fence and
/// is refused ([`hubsync_store::StoreError::Fenced`]) if the lease has moved on.
pub async fn apply_once_fenced(
    engine: &Engine,
    portal: PortalId,
    tenure: Option<&Tenure>,
) -> Result<InboundStep, EngineError> {
    let fence = tenure.map(Tenure::fence);
    let settings = &engine.settings;
    let items = engine
        .store
        .claim_inbox(
            portal,
            settings.inbound_batch,
            settings.inbound_lease,
            &settings.worker_id,
        )
        .await?;
    let mut step = InboundStep {
        claimed: items.len(),
        ..InboundStep::default()
    };
    if items.is_empty() {
        return Ok(step);
    }
    let done: Vec<i64> = items.iter().map(|i| i.id).collect();
    let mut attempt = 1;
    let result = loop {
        match apply_claimed(engine, portal, items.clone(), &done, &mut step, fence).await {
            // A record changed between this step's reads and its commit: nothing was written;
            // work the same events out again from the current state.
            Err(EngineError::Store(error)) if error.is_stale() && attempt < STALE_RETRIES => {
                tracing::debug!(portal = %portal, %error, attempt, "inbound plan went stale before its commit; planning again");
                attempt += 1;
                step = InboundStep {
                    claimed: step.claimed,
                    ..InboundStep::default()
                };
            }
            other => break other,
        }
    };
    match result {
        Ok(()) => Ok(step),
        Err(error) => {
            // Hand the events back for the next step; the error decides how long that waits.
            if let Err(release) = engine.store.release_inbox(portal, &done, fence).await {
                tracing::warn!(portal = %portal, error = %release, "could not release inbox events; their lease will expire");
            }
            Err(error)
        }
    }
}

async fn apply_claimed(
    engine: &Engine,
    portal: PortalId,
    items: Vec<InboxItem>,
    done: &[i64],
    step: &mut InboundStep,
    fence: Option<Fence>,
) -> Result<(), EngineError> {
    let mut ops: Vec<ApplyOp> = Vec::new();
    // associationChange events are consumed by the association sync, after the rest commits.
    let association_ids: BTreeSet<i64> = items
        .iter()
        .filter(|i| crate::associations::is_association_event(&i.subscription_type))
        .map(|i| i.id)
        .collect();
    let done_other: Vec<i64> = done
        .iter()
        .filter(|id| !association_ids.contains(id))
        .copied()
        .collect();
    let done: &[i64] = &done_other;
    let mut touched = BTreeSet::new();
    let mut touched_at = 0;

    let events = parse(items, step, portal);
    let events = drop_change_source_echoes(engine, events, step);
    let events = drop_origin_echoes(engine, portal, events, step).await?;

    // Coalesce per object; merges re-point ids first.
    let mut objects: BTreeMap<(ObjectType, HubspotId), ObjectEvents> = BTreeMap::new();
    for event in &events {
        let (Some(ty), Some(id)) = (event.object_type, event.object_id) else {
            continue;
        };
        match &event.kind {
            EventKind::Merge => {
                let survivor = event
                    .new_object_id
                    .or(event.primary_object_id)
                    .unwrap_or(id);
                let mut merged: Vec<HubspotId> = event.merged_object_ids.clone();
                if let Some(primary) = event.primary_object_id.filter(|p| *p != survivor) {
                    merged.push(primary);
                }
                ops.push(ApplyOp::Merge {
                    object_type: ty,
                    survivor,
                    merged: merged.clone(),
                });
                for old in merged {
                    objects.remove(&(ty, old));
                }
                let entry = objects.entry((ty, survivor)).or_default();
                entry.needs_read = true;
                entry.latest_change = entry.latest_change.max(event.occurred_at);
            }
            EventKind::Deletion => {
                let entry = objects.entry((ty, id)).or_default();
                entry.deleted_at = Some(entry.deleted_at.unwrap_or(0).max(event.occurred_at));
            }
            EventKind::Creation | EventKind::Restore => {
                let entry = objects.entry((ty, id)).or_default();
                entry.needs_read = true;
                entry.latest_change = entry.latest_change.max(event.occurred_at);
            }
            EventKind::PropertyChange => {
                let Some(name) = &event.property_name else {
                    continue;
                };
                let entry = objects.entry((ty, id)).or_default();
                entry.latest_change = entry.latest_change.max(event.occurred_at);
                let slot = entry
                    .properties
                    .entry(name.clone())
                    .or_insert((i64::MIN, None));
                if event.occurred_at > slot.0 {
                    *slot = (event.occurred_at, event.property_value.clone());
                } else if event.occurred_at == slot.0 && event.property_value != slot.1 {
                    // Two values at the same millisecond: the order is unknowable from the
                    // events, so read the record's current state instead.
                    entry.needs_read = true;
                }
            }
            EventKind::AssociationChange => {
                touched.extend(crate::associations::touched_records(event));
                touched_at = touched_at.max(event.occurred_at);
            }
            EventKind::Unknown(_) => {}
        }
    }

    // Deletions newer than any other change win.
    let mut states: Vec<RemoteState> = Vec::new();
    let mut to_read: BTreeMap<ObjectType, BTreeSet<HubspotId>> = BTreeMap::new();
    for ((ty, id), obj) in objects {
        if let Some(deleted_at) = obj.deleted_at
            && deleted_at >= obj.latest_change
        {
            ops.push(ApplyOp::Delete {
                object_type: ty,
                hubspot_id: id,
            });
            ops.push(apply::notify(
                portal,
                ty,
                "deleted",
                None,
                id,
                &FieldMap::new(),
            ));
            step.deleted += 1;
            continue;
        }
        if obj.needs_read {
            to_read.entry(ty).or_default().insert(id);
            continue;
        }
        match state_from_properties(engine, portal, ty, id, &obj).await? {
            Some(state) => states.push(state),
            None => {
                to_read.entry(ty).or_default().insert(id);
            }
        }
    }

    // Read what the events do not carry, 100 ids a call.
    for (ty, ids) in to_read {
        let ids: Vec<HubspotId> = ids.into_iter().collect();
        for chunk in ids.chunks(MAX_BATCH_INPUTS) {
            let objects = read_objects(engine, portal, ty, chunk).await?;
            step.reads += 1;
            states.extend(remote_states(engine, ty, objects).await?);
        }
    }

    let (plan, stats) = apply::plan(engine, portal, states, apply::Source::Events).await?;
    ops.extend(plan);
    step.echo_fingerprint = stats.echoes;
    step.applied = stats.applied;
    step.conflicts = stats.conflicts;
    if step.echo_change_source > 0 {
        ops.push(counter(
            counters::ECHO_CHANGE_SOURCE,
            step.echo_change_source as i64,
        ));
    }
    if step.echo_origin > 0 {
        ops.push(counter(counters::ECHO_ORIGIN, step.echo_origin as i64));
    }
    engine.store.apply_inbound(portal, ops, done, fence).await?;
    if !association_ids.is_empty() {
        let ids: Vec<i64> = association_ids.into_iter().collect();
        let links =
            crate::associations::apply_events(engine, portal, touched, touched_at, &ids, fence)
                .await?;
        step.reads += links.reads;
        step.applied += links.repaired_local;
        step.conflicts += links.conflicts;
        step.echo_fingerprint += links.equal;
    }
    // Inbound lag: from HubSpot's change to its application here, for the oldest event applied.
    if let Some(oldest) = events.iter().map(|e| e.occurred_at).min() {
        metrics::histogram!("hubsync_inbound_lag_seconds", "portal" => portal.to_string())
            .record((crate::now_ms() - oldest).max(0) as f64 / 1000.0);
    }
    metrics::counter!("hubsync_echoes_dropped_total", "path" => "change_source")
        .increment(step.echo_change_source);
    metrics::counter!("hubsync_echoes_dropped_total", "path" => "origin")
        .increment(step.echo_origin);
    metrics::counter!("hubsync_echoes_dropped_total", "path" => "fingerprint")
        .increment(step.echo_fingerprint);
    Ok(())
}

/// Parses stored payloads; unknown subscription types are counted and skipped.
fn parse(items: Vec<InboxItem>, step: &mut InboundStep, portal: PortalId) -> Vec<WebhookEvent> {
    let mut events = Vec::with_capacity(items.len());
    for item in items {
        match parse_event(&item.payload) {
            Ok(event) if event.is_known() => events.push(event),
            Ok(event) => {
                tracing::info!(portal = %portal, subscription_type = %event.subscription_type, "skipping an event of a type hubsync does not sync");
                step.skipped += 1;
            }
            Err(error) => {
                tracing::warn!(portal = %portal, inbox_id = item.id, %error, "unreadable inbox event skipped");
                step.skipped += 1;
            }
        }
    }
    events
}

/// Parses one stored event (the inbox keeps each event's raw JSON).
fn parse_event(payload: &serde_json::Value) -> Result<WebhookEvent, String> {
    let body = serde_json::to_vec(&[payload]).map_err(|e| e.to_string())?;
    hubsync_hubspot::webhooks::parse_delivery(&body)
        .map_err(|e| e.to_string())?
        .pop()
        .ok_or_else(|| "empty event".to_owned())
}

fn drop_change_source_echoes(
    engine: &Engine,
    events: Vec<WebhookEvent>,
    step: &mut InboundStep,
) -> Vec<WebhookEvent> {
    let Some(app) = engine.settings.app_id else {
        return events;
    };
    events
        .into_iter()
        .filter(|e| {
            let ours = e.is_from_app(app);
            if ours {
                step.echo_change_source += 1;
            }
            !ours
        })
        .collect()
}

/// Drops every event of a write that stamped our origin marker: the `hubsync_origin`
/// propertyChange itself, and each event of the same object at the same `occurredAt`.
async fn drop_origin_echoes(
    engine: &Engine,
    portal: PortalId,
    events: Vec<WebhookEvent>,
    step: &mut InboundStep,
) -> Result<Vec<WebhookEvent>, EngineError> {
    let mut our_writes: BTreeSet<(ObjectType, HubspotId, i64)> = BTreeSet::new();
    for e in &events {
        let (Some(ty), Some(id)) = (e.object_type, e.object_id) else {
            continue;
        };
        if e.kind == EventKind::PropertyChange
            && e.property_name.as_deref() == Some(HUBSYNC_ORIGIN_PROPERTY)
            && e.property_value
                .as_deref()
                .is_some_and(|v| v.starts_with("hubsync:"))
        {
            // Confirm it is the value we last wrote to this record.
            let sync = engine
                .store
                .get_sync_state_by_hubspot_id(portal, ty, id)
                .await?;
            let ours = sync
                .and_then(|s| s.last_origin)
                .is_some_and(|o| Some(o.as_str()) == e.property_value.as_deref());
            if ours {
                our_writes.insert((ty, id, e.occurred_at));
            }
        }
    }
    if our_writes.is_empty() {
        return Ok(events);
    }
    Ok(events
        .into_iter()
        .filter(|e| {
            let ours = matches!((e.object_type, e.object_id), (Some(ty), Some(id)) if our_writes.contains(&(ty, id, e.occurred_at)));
            if ours {
                step.echo_origin += 1;
            }
            !ours
        })
        .collect())
}

/// Builds a HubSpot state from propertyChange values laid over the base (in HubSpot's shape),
/// skipping values older than what the base already holds. `None` when there is no base.
async fn state_from_properties(
    engine: &Engine,
    portal: PortalId,
    ty: ObjectType,
    id: HubspotId,
    obj: &ObjectEvents,
) -> Result<Option<RemoteState>, EngineError> {
    let Some(sync) = engine
        .store
        .get_sync_state_by_hubspot_id(portal, ty, id)
        .await?
    else {
        return Ok(None);
    };
    let Some(base) = sync.base.clone() else {
        return Ok(None);
    };
    let mut properties = engine.mappings.to_hubspot(ty, &base).await?;
    for (name, (at, value)) in &obj.properties {
        if name == HUBSYNC_ORIGIN_PROPERTY || name == HUBSYNC_ID_PROPERTY {
            continue;
        }
        let held = properties.get(name).map(String::as_str).unwrap_or("");
        if held == value.as_deref().unwrap_or("") {
            // Already what we hold (a duplicate, or our own value).
            continue;
        }
        if sync.remote_updated_at.is_some_and(|seen| *at <= seen) {
            // Not newer than the state we hold, yet different: a late event about this
            // property, or a newer change to another property. The events cannot tell which,
            // so read the record's current state.
            return Ok(None);
        }
        properties.insert(name.clone(), value.clone().unwrap_or_default());
    }
    let object = json!({"id": id.to_string(), "properties": properties});
    let fields = match engine.mappings.to_unified(ty, object).await {
        Ok(fields) => fields,
        Err(error) if error.is_record_error() => {
            tracing::warn!(portal = %portal, object_type = %ty, hubspot_id = %id, %error, "event values do not map; reading the record instead");
            return Ok(None);
        }
        Err(error) => return Err(error.into()),
    };
    let scope: BTreeSet<String> = base.diff(&fields).into_keys().collect();
    let field_ts = scope
        .iter()
        .map(|f| (f.clone(), obj.latest_change))
        .collect();
    Ok(Some(RemoteState {
        object_type: ty,
        hubspot_id: id,
        fields,
        updated_at: obj.latest_change,
        field_ts,
        scope: Some(scope),
        hubsync_id: None,
    }))
}

/// Batch-reads records (general lane).
pub(crate) async fn read_objects(
    engine: &Engine,
    portal: PortalId,
    ty: ObjectType,
    ids: &[HubspotId],
) -> Result<Vec<HubspotObject>, EngineError> {
    let api = engine.api(portal)?;
    let props = engine.read_properties(ty);
    let props: Vec<&str> = props.iter().map(String::as_str).collect();
    let request = BatchReadRequest::by_ids(ids.iter().copied(), &props);
    let response = api.batch_read(ty, &request).await?;
    Ok(response.results)
}

/// Maps HubSpot objects to unified states; a record that does not map is logged and skipped
/// (the reconciler dead-letters it on its own pass).
pub(crate) async fn remote_states(
    engine: &Engine,
    ty: ObjectType,
    objects: Vec<HubspotObject>,
) -> Result<Vec<RemoteState>, EngineError> {
    let json_objects: Vec<serde_json::Value> = objects
        .iter()
        .map(|o| json!({"id": o.id.to_string(), "properties": o.properties}))
        .collect();
    let mapped = engine.mappings.to_unified_batch(ty, json_objects).await?;
    let mut states = Vec::with_capacity(objects.len());
    for (object, fields) in objects.into_iter().zip(mapped) {
        match fields {
            Ok(fields) => states.push(RemoteState {
                object_type: ty,
                hubspot_id: object.id,
                fields,
                updated_at: (object.updated_at.unix_timestamp_nanos() / 1_000_000) as i64,
                field_ts: BTreeMap::new(),
                scope: None,
                hubsync_id: object
                    .property(HUBSYNC_ID_PROPERTY)
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned),
            }),
            Err(error) => {
                tracing::warn!(object_type = %ty, hubspot_id = %object.id, %error, "HubSpot record does not map; skipped");
            }
        }
    }
    Ok(states)
}
