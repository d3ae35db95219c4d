//! The outbound worker: drains a portal's outbox into HubSpot.
//!
//! One step ([`push_once`]) claims the records with pending outbox items (all items of a
//! record coalesce into one claim), loads each record and its base, and works out the smallest
//! write: only the properties that differ from what HubSpot already holds (the base), none at
//! all when nothing differs. Writes go out in batches of up to 100 — updates by id, creates as
//! upserts on hubsync's own unique `hubsync_id` property (so a create retried after a crash
//! finds the record it already made), deletes as batch archives — each stamped with the origin
//! marker. HubSpot's per-record errors dead-letter exactly the records they name; the rest of
//! the batch is acknowledged in one transaction together with its new base and fingerprint.

use std::collections::{BTreeMap, BTreeSet};

use hubsync_core::{FieldMap, Fingerprint, HubspotId, LocalId, ObjectType, PortalId};
use hubsync_hubspot::model::{
    BatchResponse, HUBSYNC_ID_PROPERTY, HUBSYNC_ORIGIN_PROPERTY, HubspotObject, MAX_BATCH_INPUTS,
    UpdateInput, UpsertInput, UpsertedObject,
};
use hubsync_hubspot::{ApiError, HubspotError};
use hubsync_mapping::Properties;
use hubsync_store::{
    AckOutcome, ItemRange, LocalRecord, OutboundAck, OutboundFailure, OutboxClaim, OutboxOp,
    SyncState,
};
use serde_json::json;

use crate::lease::Tenure;
use crate::{Engine, EngineError, counters, now_ms, property_fields};

/// What one outbound step did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct OutboundStep {
    /// Records claimed.
    pub claimed: usize,
    /// Records created or updated in HubSpot.
    pub written: usize,
    /// Records archived in HubSpot.
    pub archived: usize,
    /// Records acknowledged without a call (already equal to HubSpot's state).
    pub unchanged: usize,
    /// Records moved to the dead-letter table.
    pub dead_lettered: usize,
    /// Records released for a later retry.
    pub deferred: usize,
    /// HubSpot calls made.
    pub calls: usize,
}

impl OutboundStep {
    /// Whether the outbox had nothing to claim.
    pub fn is_idle(&self) -> bool {
        self.claimed == 0
    }
}

/// A record that needs a HubSpot write.
struct Pending {
    claim: OutboxClaim,
    /// The record's normalised synced fields: the new base once HubSpot accepts it.
    fields: FieldMap,
    /// The properties to send.
    properties: Properties,
    /// Where it lives in HubSpot, if it exists there yet.
    hubspot_id: Option<HubspotId>,
    origin: String,
    /// An update's fields that differ from the base (what the write changes in HubSpot);
    /// `None` for a create, whose whole state becomes the base.
    written: Option<BTreeSet<String>>,
}

/// Accumulates a step's results; flushed to the store in two transactions.
#[derive(Default)]
struct Results {
    acks: Vec<OutboundAck>,
    /// Claimed records with association fields, for [`crate::associations`].
    links: Vec<(ItemRange, FieldMap)>,
    failures: Vec<OutboundFailure>,
    step: OutboundStep,
}

impl Results {
    fn written(&mut self, p: &Pending, hubspot_id: HubspotId, object: Option<&HubspotObject>) {
        let ts = object.map_or_else(now_ms, |o| {
            (o.updated_at.unix_timestamp_nanos() / 1_000_000) as i64
        });
        let base_ts = p.fields.keys().map(|k| (k.to_owned(), ts)).collect();
        self.acks.push(OutboundAck {
            range: p.claim.range(),
            outcome: AckOutcome::Written {
                hubspot_id,
                base: p.fields.clone(),
                base_ts,
                fp_sent: Fingerprint::of(&p.fields),
                origin: Some(p.origin.clone()),
                remote_updated_at: Some(ts),
                written_fields: p.written.clone(),
            },
        });
        self.step.written += 1;
    }

    fn dead_letter(
        &mut self,
        claim: &OutboxClaim,
        category: &str,
        reason: String,
        payload: serde_json::Value,
    ) {
        tracing::warn!(
            portal = %claim.local_id, object_type = %claim.object_type, local_id = claim.local_id.0,
            category, %reason, "outbound record dead-lettered"
        );
        self.failures.push(OutboundFailure {
            range: claim.range(),
            reason,
            category: category.to_owned(),
            retry_at: None,
            payload,
        });
        self.step.dead_lettered += 1;
    }

    fn defer(&mut self, claim: &OutboxClaim, error: &ApiError, max_attempts: u32) {
        if claim.attempts >= max_attempts {
            self.dead_letter(
                claim,
                "RETRIES_EXHAUSTED",
                format!("gave up after {} attempts: {error}", claim.attempts),
                json!({}),
            );
            return;
        }
        let delay = hubsync_core::retry::backoff(
            claim.attempts,
            std::time::Duration::from_secs(1),
            std::time::Duration::from_secs(300),
            rand::random::<f64>(),
        );
        self.failures.push(OutboundFailure {
            range: claim.range(),
            reason: error.to_string(),
            category: "RETRYABLE".to_owned(),
            retry_at: Some(now_ms() + delay.as_millis() as i64),
            payload: json!({}),
        });
        self.step.deferred += 1;
    }
}

/// Pushes one step's worth of a portal's outbox to HubSpot.
///
/// Returns an error only when nothing could be decided (the store failed, or HubSpot refused
/// the portal as a whole: expired authorisation, daily limit). Claimed items are then released
/// or left to their lease, never lost.
pub async fn push_once(engine: &Engine, portal: PortalId) -> Result<OutboundStep, EngineError> {
    push_once_fenced(engine, portal, None).await
}

/// [`push_once`] for the holder of the portal's lease: nothing is sent to HubSpot once the
/// tenure is no longer current ([`EngineError::LeaseExpired`]), and the acknowledgement carries
/// its fence and is refused ([`hubsync_store::StoreError::Fenced`]) if the lease has moved on.
pub async fn push_once_fenced(
    engine: &Engine,
    portal: PortalId,
    tenure: Option<&Tenure>,
) -> Result<OutboundStep, EngineError> {
    let settings = &engine.settings;
    let limit = (settings.outbound_batch * settings.outbound_batches_per_step) as u32;
    let claims = engine
        .store
        .claim_outbox(portal, limit, settings.outbound_lease, &settings.worker_id)
        .await?;
    if claims.is_empty() {
        return Ok(OutboundStep::default());
    }
    let api = match engine.api(portal) {
        Ok(api) => api,
        Err(error) => {
            release(engine, portal, &claims, tenure).await;
            return Err(error);
        }
    };
    // HubSpot cannot check a fence: each request is checked against the tenure right before it
    // is sent, after any wait for the budget (a process paused past its lease sends nothing).
    let api = match tenure {
        Some(tenure) => {
            let tenure = tenure.clone();
            api.with_send_guard(std::sync::Arc::new(move || tenure.is_current()))
        }
        None => api,
    };
    let mut results = Results::default();
    results.step.claimed = claims.len();
    // Outbound lag: how long the oldest claimed app write has waited to be pushed.
    if let Some(oldest) = claims.iter().map(|c| c.captured_at).min() {
        metrics::histogram!("hubsync_outbound_lag_seconds", "portal" => portal.to_string())
            .record((now_ms() - oldest).max(0) as f64 / 1000.0);
    }

    let mut by_type: BTreeMap<ObjectType, Vec<OutboxClaim>> = BTreeMap::new();
    for claim in claims {
        by_type.entry(claim.object_type).or_default().push(claim);
    }
    let mut fatal = None;
    for (ty, claims) in by_type {
        if fatal.is_none() && tenure.is_some_and(|t| !t.is_current()) {
            fatal = Some(EngineError::LeaseExpired(portal));
        }
        if fatal.is_some() {
            // The portal is blocked: hand the rest back untouched.
            release(engine, portal, &claims, tenure).await;
            continue;
        }
        if let Err(error) = push_type(engine, &api, portal, ty, claims, &mut results).await {
            fatal = Some(error);
        }
    }

    if fatal.is_none() && !results.links.is_empty() {
        // The links of the records HubSpot accepted (v4 association writes).
        let links = std::mem::take(&mut results.links);
        match crate::associations::push_after_acks(
            engine,
            &api,
            portal,
            links,
            &results.acks,
            &mut results.failures,
        )
        .await
        {
            Ok(pushed) => results.step.calls += pushed.calls,
            Err(error) => fatal = Some(error),
        }
    }
    if !results.acks.is_empty() {
        // Never acknowledge two local rows onto one HubSpot record: the second is a duplicate
        // HubSpot folded into the first (it would also break the one-to-one sync state).
        let mut seen = std::collections::BTreeSet::new();
        let (acks, duplicates): (Vec<_>, Vec<_>) = std::mem::take(&mut results.acks)
            .into_iter()
            .partition(|a| match &a.outcome {
                AckOutcome::Written { hubspot_id, .. } => {
                    seen.insert((a.range.object_type, *hubspot_id))
                }
                AckOutcome::Deleted => true,
            });
        for dup in duplicates {
            results.failures.push(OutboundFailure {
                range: dup.range,
                reason: "HubSpot holds this record as the same record as another local row in this batch".to_owned(),
                category: "CONFLICT".to_owned(),
                retry_at: None,
                payload: json!({}),
            });
            results.step.dead_lettered += 1;
        }
        engine
            .store
            .ack_outbound(portal, acks, tenure.map(Tenure::fence))
            .await?;
    }
    if !results.failures.is_empty() {
        engine
            .store
            .fail_outbound(
                portal,
                std::mem::take(&mut results.failures),
                tenure.map(Tenure::fence),
            )
            .await?;
    }
    if results.step.written > 0 {
        engine
            .store
            .add_counter(portal, counters::PUSHED, results.step.written as i64)
            .await?;
    }
    match fatal {
        Some(error) => Err(error),
        None => Ok(results.step),
    }
}

async fn release(
    engine: &Engine,
    portal: PortalId,
    claims: &[OutboxClaim],
    tenure: Option<&Tenure>,
) {
    let ranges: Vec<ItemRange> = claims.iter().map(OutboxClaim::range).collect();
    if let Err(error) = engine
        .store
        .release_outbox(portal, &ranges, tenure.map(Tenure::fence))
        .await
    {
        tracing::warn!(portal = %portal, %error, "could not release outbox claims; their lease will expire");
    }
}

async fn push_type(
    engine: &Engine,
    api: &hubsync_hubspot::PortalClient,
    portal: PortalId,
    ty: ObjectType,
    claims: Vec<OutboxClaim>,
    results: &mut Results,
) -> Result<(), EngineError> {
    let ids: Vec<LocalId> = claims.iter().map(|c| c.local_id).collect();
    // Rows and their sync states in one read.
    let mut records: BTreeMap<LocalId, LocalRecord> = BTreeMap::new();
    let mut syncs: BTreeMap<LocalId, SyncState> = BTreeMap::new();
    for (record, sync) in engine
        .store
        .get_records_with_sync_states(portal, ty, &ids)
        .await?
    {
        if let Some(sync) = sync {
            syncs.insert(record.local_id, sync);
        }
        records.insert(record.local_id, record);
    }

    let mut archives: Vec<(OutboxClaim, HubspotId)> = Vec::new();
    let mut writes: Vec<(OutboxClaim, FieldMap, Option<&SyncState>)> = Vec::new();
    for claim in claims {
        let record = records.get(&claim.local_id);
        let sync = syncs.get(&claim.local_id);
        let hubspot_id = sync
            .and_then(|s| s.hubspot_id)
            .or_else(|| record.and_then(|r| r.hubspot_id))
            .or(claim.hubspot_id);
        let deleted = claim.op == OutboxOp::Delete || record.is_none_or(|r| r.deleted);
        if deleted {
            match hubspot_id {
                Some(id) => archives.push((claim, id)),
                None => results.acks.push(OutboundAck {
                    range: claim.range(),
                    outcome: AckOutcome::Deleted,
                }),
            }
            continue;
        }
        let Some(record) = record else { continue };
        if crate::associations::has_links(ty) {
            results.links.push((claim.range(), record.fields.clone()));
        }
        match engine
            .mappings
            .normalize(ty, &property_fields(&record.fields))
        {
            Ok(fields) => writes.push((claim, fields, sync)),
            Err(error) => results.dead_letter(
                &claim,
                "MAPPING_ERROR",
                error.to_string(),
                json!({"record": record.fields.to_unified()}),
            ),
        }
    }

    // Map the new states and their bases in one round trip each.
    let locals: Vec<FieldMap> = writes.iter().map(|(_, f, _)| f.clone()).collect();
    let bases: Vec<FieldMap> = writes
        .iter()
        .map(|(_, _, s)| s.and_then(|s| s.base.clone()).unwrap_or_default())
        .collect();
    let mapped_locals = engine.mappings.to_hubspot_batch(ty, locals).await?;
    let mapped_bases = engine.mappings.to_hubspot_batch(ty, bases).await?;

    let mut updates: Vec<Pending> = Vec::new();
    let mut creates: Vec<Pending> = Vec::new();
    for (((claim, fields, sync), mapped), mapped_base) in
        writes.into_iter().zip(mapped_locals).zip(mapped_bases)
    {
        let properties = match mapped {
            Ok(p) => p,
            Err(error) => {
                results.dead_letter(
                    &claim,
                    "MAPPING_ERROR",
                    error.to_string(),
                    json!({"record": fields.to_unified()}),
                );
                continue;
            }
        };
        let hubspot_id = sync.and_then(|s| s.hubspot_id).or(claim.hubspot_id);
        let base = sync.and_then(|s| s.base.as_ref());
        let origin = format!("hubsync:{}", &Fingerprint::of(&fields).to_hex()[..16]);
        match hubspot_id {
            Some(id) => {
                let mapped_base = match (base, mapped_base) {
                    (Some(_), Ok(b)) => b,
                    _ => Properties::new(),
                };
                let mut changes = hubsync_mapping::property_changes(&mapped_base, &properties);
                if base == Some(&fields) || changes.is_empty() {
                    // HubSpot already holds this state: acknowledge without a call.
                    results.acks.push(OutboundAck {
                        range: claim.range(),
                        outcome: AckOutcome::Written {
                            hubspot_id: id,
                            base: fields.clone(),
                            base_ts: sync.map(|s| s.base_ts.clone()).unwrap_or_default(),
                            fp_sent: Fingerprint::of(&fields),
                            origin: sync.and_then(|s| s.last_origin.clone()),
                            remote_updated_at: sync.and_then(|s| s.remote_updated_at),
                            written_fields: None,
                        },
                    });
                    results.step.unchanged += 1;
                    continue;
                }
                changes.insert(HUBSYNC_ORIGIN_PROPERTY.to_owned(), origin.clone());
                let written = base.map(|b| b.diff(&fields).into_keys().collect());
                updates.push(Pending {
                    claim,
                    fields,
                    properties: changes,
                    hubspot_id: Some(id),
                    origin,
                    written,
                });
            }
            None => {
                let mut props: Properties = properties
                    .into_iter()
                    .filter(|(_, v)| !v.is_empty())
                    .collect();
                props.insert(HUBSYNC_ORIGIN_PROPERTY.to_owned(), origin.clone());
                creates.push(Pending {
                    claim,
                    fields,
                    properties: props,
                    hubspot_id: None,
                    origin,
                    written: None,
                });
            }
        }
    }

    let size = engine.settings.outbound_batch.clamp(1, MAX_BATCH_INPUTS);
    for chunk in chunks(updates, size) {
        push_updates(
            api,
            portal,
            ty,
            chunk,
            results,
            engine.settings.max_attempts,
        )
        .await?;
    }
    for chunk in chunks(creates, size) {
        push_creates(engine, api, portal, ty, chunk, results).await?;
    }
    for chunk in chunks(archives, size) {
        let ids: Vec<HubspotId> = chunk.iter().map(|(_, id)| *id).collect();
        results.step.calls += 1;
        match api.batch_archive(ty, &ids).await {
            Ok(()) => {
                for (claim, _) in chunk {
                    results.acks.push(OutboundAck {
                        range: claim.range(),
                        outcome: AckOutcome::Deleted,
                    });
                    results.step.archived += 1;
                }
            }
            Err(error) if error.is_portal_blocked() => return Err(error.into()),
            Err(error) if error.is_permanent_for_request() => {
                for (claim, id) in chunk {
                    results.dead_letter(
                        &claim,
                        error_category(&error),
                        error.to_string(),
                        json!({"archive": id}),
                    );
                }
            }
            Err(error) => {
                for (claim, _) in chunk {
                    results.defer(&claim, &error, engine.settings.max_attempts);
                }
            }
        }
    }
    Ok(())
}

/// `items` in batches of `size` (the configured batch size, at most HubSpot's 100).
fn chunks<T>(items: Vec<T>, size: usize) -> Vec<Vec<T>> {
    let mut out = Vec::new();
    let mut items = items.into_iter().peekable();
    while items.peek().is_some() {
        out.push(items.by_ref().take(size).collect());
    }
    out
}

fn error_category(error: &ApiError) -> &str {
    error
        .hubspot_error()
        .map_or("ERROR", HubspotError::category)
}

/// Updates by id. Per-record errors dead-letter that record; a whole-call refusal that is not
/// about the portal is split in halves until the bad records are isolated.
async fn push_updates(
    api: &hubsync_hubspot::PortalClient,
    portal: PortalId,
    ty: ObjectType,
    batch: Vec<Pending>,
    results: &mut Results,
    max_attempts: u32,
) -> Result<(), EngineError> {
    let mut queue = vec![batch];
    while let Some(batch) = queue.pop() {
        let inputs: Vec<UpdateInput> = batch
            .iter()
            .filter_map(|p| {
                p.hubspot_id
                    .map(|id| UpdateInput::by_id(id, p.properties.clone()))
            })
            .collect();
        results.step.calls += 1;
        match api.batch_update(ty, &inputs).await {
            Ok(response) => settle_updates(batch, &response, results),
            Err(error) if error.is_portal_blocked() => return Err(error.into()),
            Err(error) if error.is_permanent_for_request() && batch.len() > 1 => {
                let mut batch = batch;
                let second = batch.split_off(batch.len() / 2);
                queue.push(batch);
                queue.push(second);
            }
            Err(error) if error.is_permanent_for_request() => {
                for p in &batch {
                    results.dead_letter(
                        &p.claim,
                        error_category(&error),
                        error.to_string(),
                        json!({"properties": p.properties}),
                    );
                }
            }
            Err(error) => {
                tracing::warn!(portal = %portal, object_type = %ty, %error, "batch update failed; will retry");
                for p in &batch {
                    results.defer(&p.claim, &error, max_attempts);
                }
            }
        }
    }
    Ok(())
}

fn settle_updates(
    batch: Vec<Pending>,
    response: &BatchResponse<HubspotObject>,
    results: &mut Results,
) {
    let by_id: BTreeMap<HubspotId, &HubspotObject> =
        response.results.iter().map(|o| (o.id, o)).collect();
    for p in batch {
        let Some(id) = p.hubspot_id else { continue };
        if let Some(object) = by_id.get(&id) {
            results.written(&p, id, Some(object));
        } else if let Some(error) = response.error_for_id(&id.to_string()) {
            results.dead_letter(
                &p.claim,
                error.category(),
                error.message.clone(),
                json!({"id": id, "properties": p.properties}),
            );
        } else {
            // HubSpot silently omits merged-away ids from batch update results.
            results.dead_letter(
                &p.claim,
                "OBJECT_NOT_FOUND",
                format!("HubSpot did not return record {id}; it may have been merged or deleted"),
                json!({"id": id, "properties": p.properties}),
            );
        }
    }
}

/// Creates as upserts on `hubsync_id`. A contact whose email HubSpot already holds is linked to
/// that record (HubSpot answers 409 with the existing id) and updated instead.
async fn push_creates(
    engine: &Engine,
    api: &hubsync_hubspot::PortalClient,
    portal: PortalId,
    ty: ObjectType,
    mut batch: Vec<Pending>,
    results: &mut Results,
) -> Result<(), EngineError> {
    let mut inputs_by_hubsync_id: BTreeMap<String, usize> = BTreeMap::new();
    for (i, p) in batch.iter_mut().enumerate() {
        let hubsync_id = engine
            .store
            .ensure_hubsync_id(portal, ty, p.claim.local_id)
            .await?;
        p.properties
            .insert(HUBSYNC_ID_PROPERTY.to_owned(), hubsync_id.clone());
        inputs_by_hubsync_id.insert(hubsync_id, i);
    }
    let mut queue = vec![batch];
    while let Some(batch) = queue.pop() {
        let inputs: Vec<UpsertInput> = batch
            .iter()
            .map(|p| {
                let mut props = p.properties.clone();
                let id = props.remove(HUBSYNC_ID_PROPERTY).unwrap_or_default();
                UpsertInput::by_hubsync_id(id, props)
            })
            .collect();
        results.step.calls += 1;
        match api.batch_upsert(ty, &inputs).await {
            Ok(response) => {
                settle_creates(engine, api, portal, ty, batch, &response, results).await?
            }
            Err(error) if error.is_portal_blocked() => return Err(error.into()),
            Err(error) if error.is_permanent_for_request() && batch.len() > 1 => {
                let mut batch = batch;
                let second = batch.split_off(batch.len() / 2);
                queue.push(batch);
                queue.push(second);
            }
            Err(error) if error.is_permanent_for_request() => {
                let Some(p) = batch.into_iter().next() else {
                    continue;
                };
                match error.hubspot_error().and_then(HubspotError::existing_id) {
                    Some(existing) => {
                        link_existing(engine, api, portal, ty, p, existing, results).await?
                    }
                    None => results.dead_letter(
                        &p.claim,
                        error_category(&error),
                        error.to_string(),
                        json!({"properties": p.properties}),
                    ),
                }
            }
            Err(error) => {
                tracing::warn!(portal = %portal, object_type = %ty, %error, "batch upsert failed; will retry");
                for p in &batch {
                    results.defer(&p.claim, &error, engine.settings.max_attempts);
                }
            }
        }
    }
    Ok(())
}

async fn settle_creates(
    engine: &Engine,
    api: &hubsync_hubspot::PortalClient,
    portal: PortalId,
    ty: ObjectType,
    batch: Vec<Pending>,
    response: &BatchResponse<UpsertedObject>,
    results: &mut Results,
) -> Result<(), EngineError> {
    let by_hubsync_id: BTreeMap<&str, &UpsertedObject> = response
        .results
        .iter()
        .filter_map(|o| o.object.property(HUBSYNC_ID_PROPERTY).map(|h| (h, o)))
        .collect();
    for p in batch {
        let hubsync_id = p
            .properties
            .get(HUBSYNC_ID_PROPERTY)
            .cloned()
            .unwrap_or_default();
        if let Some(object) = by_hubsync_id.get(hubsync_id.as_str()) {
            results.written(&p, object.object.id, Some(&object.object));
        } else if let Some(error) = response.error_for_id(&hubsync_id) {
            match error.existing_id() {
                Some(existing) => {
                    link_existing(engine, api, portal, ty, p, existing, results).await?
                }
                None => results.dead_letter(
                    &p.claim,
                    error.category(),
                    error.message.clone(),
                    json!({"properties": p.properties}),
                ),
            }
        } else {
            results.dead_letter(
                &p.claim,
                "MISSING_RESULT",
                "HubSpot's upsert answer named neither a result nor an error for this record"
                    .to_owned(),
                json!({"properties": p.properties}),
            );
        }
    }
    Ok(())
}

/// Links a local record to the HubSpot record that already holds its unique value, then writes
/// the local state to it — unless another local row already holds that record (two app rows
/// with one email): HubSpot cannot hold both, so this one is dead-lettered with the reason.
async fn link_existing(
    engine: &Engine,
    api: &hubsync_hubspot::PortalClient,
    portal: PortalId,
    ty: ObjectType,
    mut p: Pending,
    existing: HubspotId,
    results: &mut Results,
) -> Result<(), EngineError> {
    let claimed_in_step = results.acks.iter().any(|a| {
        matches!(&a.outcome, AckOutcome::Written { hubspot_id, .. } if *hubspot_id == existing)
            && a.range.local_id != p.claim.local_id
    });
    let holder = engine
        .store
        .find_by_hubspot_id(portal, ty, existing)
        .await?
        .filter(|row| row.local_id != p.claim.local_id && !row.deleted);
    // The existing record may have been made by hubsync for another local row whose answer
    // was lost (a failed batch that HubSpot partly carried out): its `hubsync_id` says whose.
    let ours = p.properties.get(HUBSYNC_ID_PROPERTY).cloned();
    let owner = if claimed_in_step || holder.is_some() {
        None
    } else {
        results.step.calls += 1;
        let key = hubsync_hubspot::model::ObjectKey::Id(existing);
        match api
            .get(ty, &key, &[HUBSYNC_ID_PROPERTY.to_owned()], false)
            .await
        {
            Ok(object) => object
                .property(HUBSYNC_ID_PROPERTY)
                .filter(|h| !h.is_empty())
                .map(str::to_owned),
            Err(error) if error.is_portal_blocked() => return Err(error.into()),
            Err(_) => None,
        }
    };
    let owned_by_other = owner.is_some() && owner != ours;
    if claimed_in_step || holder.is_some() || owned_by_other {
        let other = match holder {
            Some(h) => format!("local record {}", h.local_id.0),
            None => "another local record".to_owned(),
        };
        results.dead_letter(
            &p.claim,
            "CONFLICT",
            format!("HubSpot record {existing} already holds this record's unique value and is linked to {other}"),
            json!({"existing_id": existing, "properties": p.properties}),
        );
        return Ok(());
    }
    let max_attempts = engine.settings.max_attempts;
    tracing::info!(object_type = %ty, local_id = p.claim.local_id.0, hubspot_id = %existing, "linking to the existing HubSpot record");
    p.properties.remove(HUBSYNC_ID_PROPERTY);
    p.hubspot_id = Some(existing);
    let input = UpdateInput::by_id(existing, p.properties.clone());
    results.step.calls += 1;
    match api.batch_update(ty, &[input]).await {
        Ok(response) => settle_updates(vec![p], &response, results),
        Err(error) if error.is_portal_blocked() => return Err(error.into()),
        Err(error) if error.is_permanent_for_request() => results.dead_letter(
            &p.claim,
            error_category(&error),
            error.to_string(),
            json!({"properties": p.properties}),
        ),
        Err(error) => results.defer(&p.claim, &error, max_attempts),
    }
    Ok(())
}
