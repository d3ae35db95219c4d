//! Associations sync: the unified model's association fields — `contacts.company_id`,
//! `deals.company_id`, `deals.contact_ids` — kept in step with HubSpot's v4 associations, both
//! ways.
//!
//! This module owns everything about them; the workers only call in:
//! - **outbound** (`push`, from [`outbound::push_once`](crate::outbound::push_once)): after a
//!   step's property writes, each acknowledged record's association fields are compared with
//!   their base (what HubSpot held when last synced); the differences go out as v4 batch
//!   archives, then batch creates (≤ [`WRITE_BATCH`] inputs a call, general lane, through the
//!   same rate-aware client). Local ids are translated to HubSpot ids; a link to a record that
//!   has no HubSpot id yet waits: the record is re-queued with a short delay, never
//!   dead-lettered.
//! - **inbound** (`apply_events`, from [`inbound::apply_once`](crate::inbound::apply_once)):
//!   `associationChange` events name the records whose links changed; their current
//!   associations are batch-read (≤ 1,000 records a call) and merged — so late, duplicated or
//!   reordered events cannot leave a stale link, and echoes of our own writes (dropped by change
//!   source, or equal to the base) change nothing.
//! - **import and reconcile** ([`import_step`], [`reconcile_pass`]): association changes do not
//!   bump a record's last-modified date, so the cursor walk cannot see them; these walk the
//!   local records that have a HubSpot id, 1,000 per batch read, and repair drift both ways.
//!
//! The merge is three-way against the base kept in the store's `association_state`: a link
//! changed on one side takes that side; for `contact_ids` additions and removals from both sides
//! combine element by element; a single link (`company_id`) changed on both sides to different
//! records is a conflict, settled by the type's policy for the field and recorded. Associated
//! records HubSpot has and the app does not are imported (batch read, the one merge) before the
//! link is written.

use std::collections::{BTreeMap, BTreeSet};

use hubsync_core::merge::Side;
use hubsync_core::{Conflict, ConflictPolicy, FieldMap, HubspotId, LocalId, ObjectType, PortalId};
use hubsync_hubspot::PortalClient;
use hubsync_hubspot::model::{
    AssociatedRecord, AssociationArchive, AssociationCreate, AssociationSpec,
};
use hubsync_hubspot::webhooks::WebhookEvent;
use hubsync_store::{
    AckOutcome, AssociationBase, AssociationOp, Fence, Filter, FilterOp, ItemRange, LocalRecord,
    OutboundAck, OutboundFailure, OutboxOp,
};
use serde::Serialize;
use serde_json::{Value, json};

use crate::lease::Tenure;
use crate::{Engine, EngineError, counters, now_ms};

/// Association inputs per v4 batch create or archive call (HubSpot allows 2,000).
pub const WRITE_BATCH: usize = 500;
/// Records per v4 batch read call (HubSpot's maximum).
pub const READ_BATCH: usize = 1000;
/// How long a record whose link waits for the associated record's HubSpot id is held back.
const WAIT_FOR_ID_MS: i64 = 2_000;
/// The import's cursor.
const IMPORT_CURSOR: &str = "import:associations";

/// Counter: association fields written locally from HubSpot.
pub const COUNTER_APPLIED: &str = "associations.applied";
/// Counter: association links created or archived in HubSpot.
pub const COUNTER_PUSHED: &str = "associations.pushed";

/// One synced association field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Link {
    /// The record type holding the field.
    pub from: ObjectType,
    /// The field (`company_id`, `contact_ids`).
    pub field: &'static str,
    /// The associated type.
    pub to: ObjectType,
    /// The HUBSPOT_DEFINED type id hubsync creates.
    pub create_type: u32,
    /// The type id that marks the primary link, read back (for single links).
    pub primary_type: Option<u32>,
    /// One associated record (`company_id`) or a set (`contact_ids`).
    pub single: bool,
}

/// The synced association fields: contact → primary company (type 1, which HubSpot pairs with
/// the unlabeled 279), deal → company (341), deal → contacts (3).
pub const LINKS: [Link; 3] = [
    Link {
        from: ObjectType::Contacts,
        field: "company_id",
        to: ObjectType::Companies,
        create_type: 1,
        primary_type: Some(1),
        single: true,
    },
    Link {
        from: ObjectType::Deals,
        field: "company_id",
        to: ObjectType::Companies,
        create_type: 341,
        primary_type: Some(5),
        single: true,
    },
    Link {
        from: ObjectType::Deals,
        field: "contact_ids",
        to: ObjectType::Contacts,
        create_type: 3,
        primary_type: None,
        single: false,
    },
];

fn links_of(ty: ObjectType) -> impl Iterator<Item = &'static Link> {
    LINKS.iter().filter(move |l| l.from == ty)
}

/// Whether a type has association fields.
pub fn has_links(ty: ObjectType) -> bool {
    links_of(ty).next().is_some()
}

/// The local ids a record's field names, sorted.
fn local_targets(fields: &FieldMap, link: &Link) -> Vec<LocalId> {
    let mut ids: Vec<LocalId> = match fields.get(link.field) {
        Value::Array(items) => items.iter().filter_map(as_int).map(LocalId).collect(),
        other => as_int(other).map(LocalId).into_iter().collect(),
    };
    ids.sort();
    ids.dedup();
    ids
}

fn as_int(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// The field's value for a set of local ids.
fn local_value(link: &Link, ids: &[LocalId]) -> Value {
    if link.single {
        ids.first().map_or(Value::Null, |id| json!(id.get()))
    } else {
        let mut ids: Vec<i64> = ids.iter().map(|id| id.get()).collect();
        ids.sort_unstable();
        ids.dedup();
        json!(ids)
    }
}

/// What HubSpot's associations mean for the field: every associated record for a set; the
/// primary one (else the lowest id) for a single link.
fn remote_targets(link: &Link, to: &[AssociatedRecord]) -> Vec<HubspotId> {
    if link.single {
        let primary = link.primary_type.and_then(|p| {
            to.iter()
                .filter(|r| r.association_types.iter().any(|t| t.type_id == p))
                .map(|r| r.to_object_id)
                .min()
        });
        primary
            .or_else(|| to.iter().map(|r| r.to_object_id).min())
            .into_iter()
            .collect()
    } else {
        let mut ids: Vec<HubspotId> = to.iter().map(|r| r.to_object_id).collect();
        ids.sort();
        ids.dedup();
        ids
    }
}

fn sorted(ids: impl IntoIterator<Item = HubspotId>) -> Vec<HubspotId> {
    let set: BTreeSet<HubspotId> = ids.into_iter().collect();
    set.into_iter().collect()
}

// ---------------------------------------------------------------------------------------------
// Outbound
// ---------------------------------------------------------------------------------------------

/// A record the outbound step acknowledged, whose links may need writing.
pub(crate) struct PushWork {
    /// The record's items (re-queued behind these when a link must wait).
    pub range: ItemRange,
    /// Its HubSpot id (just written or already known).
    pub hubspot_id: HubspotId,
    /// The row's fields (association fields are read from here).
    pub fields: FieldMap,
}

/// [`push`] for the records of one outbound step: `rows` are the claimed records with
/// association fields, `acks` the step's acknowledgements (only records HubSpot accepted, with
/// the id they now have, get their links written).
pub(crate) async fn push_after_acks(
    engine: &Engine,
    api: &PortalClient,
    portal: PortalId,
    rows: Vec<(ItemRange, FieldMap)>,
    acks: &[OutboundAck],
    failures: &mut Vec<OutboundFailure>,
) -> Result<PushOutcome, EngineError> {
    let known: BTreeMap<(ObjectType, LocalId), HubspotId> = acks
        .iter()
        .filter_map(|a| match &a.outcome {
            AckOutcome::Written { hubspot_id, .. } => {
                Some(((a.range.object_type, a.range.local_id), *hubspot_id))
            }
            AckOutcome::Deleted => None,
        })
        .collect();
    let work: Vec<PushWork> = rows
        .into_iter()
        .filter_map(|(range, fields)| {
            known
                .get(&(range.object_type, range.local_id))
                .map(|h| PushWork {
                    range,
                    hubspot_id: *h,
                    fields,
                })
        })
        .collect();
    push(engine, api, portal, work, &known, failures).await
}

/// What [`push`] did.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct PushOutcome {
    /// HubSpot calls made.
    pub calls: usize,
    /// Links created or archived.
    pub written: usize,
    /// Records held back until an associated record has a HubSpot id (or a retry).
    pub waiting: usize,
}

/// Writes the link differences of acknowledged records to HubSpot and records the new bases.
/// `known` holds the HubSpot ids this step just acknowledged (creates not yet in the store).
/// Records that must wait are re-queued; their delayed items are added to `failures` (the
/// caller records them after its acknowledgement).
pub(crate) async fn push(
    engine: &Engine,
    api: &PortalClient,
    portal: PortalId,
    work: Vec<PushWork>,
    known: &BTreeMap<(ObjectType, LocalId), HubspotId>,
    failures: &mut Vec<OutboundFailure>,
) -> Result<PushOutcome, EngineError> {
    let mut outcome = PushOutcome::default();
    let work: Vec<PushWork> = work
        .into_iter()
        .filter(|w| has_links(w.range.object_type))
        .collect();
    if work.is_empty() {
        return Ok(outcome);
    }
    let store = &engine.store;

    // Bases of the records, per type.
    let mut bases: BTreeMap<(ObjectType, LocalId, &'static str), Vec<HubspotId>> = BTreeMap::new();
    for ty in ObjectType::ALL.into_iter().filter(|t| has_links(*t)) {
        let ids: Vec<LocalId> = work
            .iter()
            .filter(|w| w.range.object_type == ty)
            .map(|w| w.range.local_id)
            .collect();
        if ids.is_empty() {
            continue;
        }
        for base in store.get_association_bases(portal, ty, &ids).await? {
            if let Some(link) = links_of(ty).find(|l| l.field == base.field) {
                bases.insert((ty, base.local_id, link.field), base.targets);
            }
        }
    }

    // Translate the linked local ids: this step's acknowledgements, then the store.
    let mut wanted: BTreeMap<ObjectType, BTreeSet<LocalId>> = BTreeMap::new();
    for w in &work {
        for link in links_of(w.range.object_type) {
            wanted
                .entry(link.to)
                .or_default()
                .extend(local_targets(&w.fields, link));
        }
    }
    let mut resolved: BTreeMap<(ObjectType, LocalId), Target> = BTreeMap::new();
    for (ty, ids) in wanted {
        let ids: Vec<LocalId> = ids.into_iter().collect();
        let rows = store.get_records(portal, ty, &ids).await?;
        let rows: BTreeMap<LocalId, LocalRecord> =
            rows.into_iter().map(|r| (r.local_id, r)).collect();
        for id in ids {
            let target = match (known.get(&(ty, id)), rows.get(&id)) {
                (_, Some(row)) if row.deleted => Target::Gone,
                (Some(h), _) => Target::At(*h),
                (None, Some(row)) => row.hubspot_id.map_or(Target::Waiting, Target::At),
                (None, None) => Target::Gone,
            };
            resolved.insert((ty, id), target);
        }
    }

    // The differences, per link.
    let mut archives: BTreeMap<usize, Vec<(usize, HubspotId, Vec<HubspotId>)>> = BTreeMap::new();
    let mut creates: BTreeMap<usize, Vec<(usize, HubspotId, HubspotId)>> = BTreeMap::new();
    // (work index, link index) → the new base if the writes succeed.
    let mut new_bases: BTreeMap<(usize, usize), Vec<HubspotId>> = BTreeMap::new();
    let mut waiting: BTreeSet<usize> = BTreeSet::new();
    for (wi, w) in work.iter().enumerate() {
        let ty = w.range.object_type;
        for (li, link) in LINKS.iter().enumerate().filter(|(_, l)| l.from == ty) {
            let mut desired = Vec::new();
            for id in local_targets(&w.fields, link) {
                match resolved.get(&(link.to, id)) {
                    Some(Target::At(h)) => desired.push(*h),
                    Some(Target::Waiting) => {
                        waiting.insert(wi);
                    }
                    Some(Target::Gone) | None => {
                        tracing::info!(portal = %portal, object_type = %ty, local_id = %w.range.local_id,
                            field = link.field, target = %id, "linked record does not exist locally; link skipped");
                    }
                }
            }
            let desired = sorted(desired);
            let stored = bases.get(&(ty, w.range.local_id, link.field));
            let base = stored.cloned().unwrap_or_default();
            let adds: Vec<HubspotId> = desired
                .iter()
                .filter(|h| !base.contains(h))
                .copied()
                .collect();
            let removes: Vec<HubspotId> = base
                .iter()
                .filter(|h| !desired.contains(h))
                .copied()
                .collect();
            if adds.is_empty() && removes.is_empty() {
                if stored.is_none() && !desired.is_empty() {
                    new_bases.insert((wi, li), desired);
                }
                continue;
            }
            if !removes.is_empty() {
                archives
                    .entry(li)
                    .or_default()
                    .push((wi, w.hubspot_id, removes));
            }
            for to in adds {
                creates.entry(li).or_default().push((wi, w.hubspot_id, to));
            }
            new_bases.insert((wi, li), desired);
        }
    }

    // Archives first (a new primary company replaces the old one), then creates.
    let mut failed: BTreeSet<(usize, usize)> = BTreeSet::new();
    let mut retry: BTreeSet<usize> = BTreeSet::new();
    // Records with a link HubSpot refused: dead-lettered (a retry re-queues the record).
    let mut dead: BTreeMap<usize, (String, Value)> = BTreeMap::new();
    for (li, items) in archives {
        let link = &LINKS[li];
        for chunk in items.chunks(WRITE_BATCH) {
            let inputs: Vec<AssociationArchive> = chunk
                .iter()
                .map(|(_, from, to)| AssociationArchive {
                    from: *from,
                    to: to.clone(),
                })
                .collect();
            outcome.calls += 1;
            match api
                .batch_archive_associations(link.from, link.to, &inputs)
                .await
            {
                Ok(()) => outcome.written += inputs.iter().map(|i| i.to.len()).sum::<usize>(),
                Err(error) if error.is_portal_blocked() => return Err(error.into()),
                Err(error) => {
                    let permanent = error.is_permanent_for_request();
                    for (wi, _, to) in chunk {
                        failed.insert((*wi, li));
                        if permanent {
                            dead_letter(
                                &mut dead,
                                portal,
                                *wi,
                                &work[*wi],
                                link,
                                to,
                                &error.to_string(),
                            );
                        } else {
                            retry.insert(*wi);
                        }
                    }
                }
            }
        }
    }
    for (li, items) in creates {
        let link = &LINKS[li];
        let items: Vec<_> = items
            .into_iter()
            .filter(|(wi, _, _)| !failed.contains(&(*wi, li)))
            .collect();
        for chunk in items.chunks(WRITE_BATCH) {
            let inputs: Vec<AssociationCreate> = chunk
                .iter()
                .map(|(_, from, to)| AssociationCreate {
                    from: *from,
                    to: *to,
                    types: vec![AssociationSpec::hubspot_defined(link.create_type)],
                })
                .collect();
            outcome.calls += 1;
            match api
                .batch_create_associations(link.from, link.to, &inputs)
                .await
            {
                Ok(response) => {
                    let made: BTreeSet<(HubspotId, HubspotId)> = response
                        .results
                        .iter()
                        .map(|r| (r.from_object_id, r.to_object_id))
                        .collect();
                    for (wi, from, to) in chunk {
                        if made.contains(&(*from, *to)) {
                            outcome.written += 1;
                        } else {
                            failed.insert((*wi, li));
                            let reason = response
                                .errors
                                .iter()
                                .find(|e| e.message.contains(&to.to_string()))
                                .map_or_else(
                                    || "HubSpot did not create the association".to_owned(),
                                    |e| e.message.clone(),
                                );
                            dead_letter(&mut dead, portal, *wi, &work[*wi], link, &[*to], &reason);
                        }
                    }
                }
                Err(error) if error.is_portal_blocked() => return Err(error.into()),
                Err(error) => {
                    let permanent = error.is_permanent_for_request();
                    for (wi, _, to) in chunk {
                        failed.insert((*wi, li));
                        if permanent {
                            dead_letter(
                                &mut dead,
                                portal,
                                *wi,
                                &work[*wi],
                                link,
                                &[*to],
                                &error.to_string(),
                            );
                        } else {
                            retry.insert(*wi);
                        }
                    }
                }
            }
        }
    }

    // New bases: what HubSpot now holds. A failed field keeps its old base (the next push or
    // reconcile pass tries again).
    let now = now_ms();
    let saved: Vec<AssociationBase> = new_bases
        .into_iter()
        .filter(|(key, _)| !failed.contains(key))
        .map(|((wi, li), targets)| AssociationBase {
            object_type: work[wi].range.object_type,
            local_id: work[wi].range.local_id,
            field: LINKS[li].field.to_owned(),
            targets,
            synced_at: now,
        })
        .collect();
    store.save_association_bases(portal, saved).await?;

    // Records that wait (for an id, or after a transient failure) come back after a delay, on
    // an item of their own behind the acknowledged ones; refused links are dead-lettered the
    // same way.
    for wi in waiting
        .union(&retry)
        .chain(dead.keys())
        .collect::<BTreeSet<_>>()
    {
        let w = &work[*wi];
        let item = store
            .enqueue_outbox(
                portal,
                w.range.object_type,
                w.range.local_id,
                OutboxOp::Upsert,
            )
            .await?;
        let range = ItemRange {
            up_to_item_id: item,
            ..w.range
        };
        let failure = match dead.get(wi) {
            Some((reason, payload)) => OutboundFailure {
                range,
                reason: reason.clone(),
                category: "ASSOCIATION".to_owned(),
                retry_at: None,
                payload: payload.clone(),
            },
            None => {
                outcome.waiting += 1;
                OutboundFailure {
                    range,
                    reason: if waiting.contains(wi) {
                        "a linked record has no HubSpot id yet".to_owned()
                    } else {
                        "association write failed; will retry".to_owned()
                    },
                    category: "WAITING".to_owned(),
                    retry_at: Some(now + WAIT_FOR_ID_MS),
                    payload: json!({}),
                }
            }
        };
        failures.push(failure);
    }
    if outcome.written > 0 {
        store
            .add_counter(portal, COUNTER_PUSHED, outcome.written as i64)
            .await?;
    }
    Ok(outcome)
}

#[derive(Debug, Clone, Copy)]
enum Target {
    At(HubspotId),
    Waiting,
    Gone,
}

fn dead_letter(
    dead: &mut BTreeMap<usize, (String, Value)>,
    portal: PortalId,
    wi: usize,
    work: &PushWork,
    link: &Link,
    to: &[HubspotId],
    reason: &str,
) {
    tracing::warn!(portal = %portal, object_type = %link.from, local_id = %work.range.local_id,
        field = link.field, %reason, "association write dead-lettered");
    dead.insert(
        wi,
        (
            reason.to_owned(),
            json!({"field": link.field, "from": work.hubspot_id, "to": to}),
        ),
    );
}

// ---------------------------------------------------------------------------------------------
// HubSpot → local
// ---------------------------------------------------------------------------------------------

/// Whether an inbox event is an association change (consumed by `apply_events`).
pub fn is_association_event(subscription_type: &str) -> bool {
    subscription_type.ends_with(".associationChange")
}

/// The records whose association fields an `associationChange` event may have changed, in
/// either direction of the pair.
pub fn touched_records(event: &WebhookEvent) -> Vec<(ObjectType, HubspotId)> {
    let (Some(kind), Some(from), Some(to)) = (
        event.association_type.as_deref(),
        event.from_object_id,
        event.to_object_id,
    ) else {
        return Vec::new();
    };
    let kind = kind.to_ascii_uppercase();
    let Some((a, b)) = kind.split_once("_TO_") else {
        return Vec::new();
    };
    let parse = |s: &str| match s {
        "CONTACT" => Some(ObjectType::Contacts),
        "COMPANY" => Some(ObjectType::Companies),
        "DEAL" => Some(ObjectType::Deals),
        _ => None,
    };
    let (Some(a), Some(b)) = (parse(a), parse(b)) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for link in &LINKS {
        if link.from == a && link.to == b {
            out.push((a, from));
        } else if link.from == b && link.to == a {
            out.push((b, to));
        }
    }
    out.sort();
    out.dedup();
    out
}

/// What a sync of remote associations did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct AssociationReport {
    /// Local records compared.
    pub records: u64,
    /// Batch read calls made (association reads and imports of missing records).
    pub reads: u64,
    /// Fields written locally.
    pub repaired_local: u64,
    /// Records queued so that local links reach HubSpot.
    pub repaired_remote: u64,
    /// Fields already equal on both sides.
    pub equal: u64,
    /// Conflicts settled.
    pub conflicts: u64,
    /// Fields left for later (an associated record could not be made local).
    pub deferred: u64,
}

impl AssociationReport {
    fn add(&mut self, other: &AssociationReport) {
        self.records += other.records;
        self.reads += other.reads;
        self.repaired_local += other.repaired_local;
        self.repaired_remote += other.repaired_remote;
        self.equal += other.equal;
        self.conflicts += other.conflicts;
        self.deferred += other.deferred;
    }
}

/// Applies association events: reads the current associations of every record they touched,
/// merges, and commits the result together with the consumption of `done_inbox_ids`.
pub(crate) async fn apply_events(
    engine: &Engine,
    portal: PortalId,
    touched: BTreeSet<(ObjectType, HubspotId)>,
    occurred_at: i64,
    done_inbox_ids: &[i64],
    fence: Option<Fence>,
) -> Result<AssociationReport, EngineError> {
    let mut report = AssociationReport::default();
    let mut ops = Vec::new();
    for ty in ObjectType::ALL.into_iter().filter(|t| has_links(*t)) {
        let ids: Vec<HubspotId> = touched
            .iter()
            .filter(|(t, _)| *t == ty)
            .map(|(_, id)| *id)
            .collect();
        if ids.is_empty() {
            continue;
        }
        let locals = engine
            .store
            .local_ids_by_hubspot_ids(portal, ty, &ids)
            .await?;
        let local_ids: Vec<LocalId> = locals.values().copied().collect();
        let rows = engine.store.get_records(portal, ty, &local_ids).await?;
        let (page_ops, page) =
            sync_records(engine, portal, ty, rows, Some(occurred_at), fence).await?;
        ops.extend(page_ops);
        report.add(&page);
    }
    if report.equal > 0 {
        ops.push(AssociationOp::Counter {
            name: counters::ECHO_FINGERPRINT.to_owned(),
            delta: report.equal as i64,
        });
    }
    engine
        .store
        .apply_associations(portal, ops, done_inbox_ids, fence)
        .await?;
    Ok(report)
}

/// One page of the association import, after the records' own import: reads the associations
/// of up to 1,000 local records that have a HubSpot id and applies them, committed with the
/// cursor. Returns `None` once every record has been imported.
pub async fn import_step(
    engine: &Engine,
    portal: PortalId,
    tenure: Option<&Tenure>,
) -> Result<Option<AssociationReport>, EngineError> {
    let cursor = engine.store.get_cursor(portal, IMPORT_CURSOR).await?;
    let cursor = cursor.unwrap_or_default();
    if cursor == "done" {
        return Ok(None);
    }
    let (ty, after) = match cursor.split_once(':') {
        Some((t, a)) => (
            t.parse::<ObjectType>().unwrap_or(ObjectType::Contacts),
            a.parse::<i64>().ok().map(LocalId),
        ),
        None => (ObjectType::Contacts, None),
    };
    let fence = tenure.map(Tenure::fence);
    let (mut ops, report, last) = sync_page(engine, portal, ty, after, fence).await?;
    let next = match last {
        Some(last) => format!("{ty}:{}", last.get()),
        None => {
            let later = ObjectType::ALL
                .into_iter()
                .filter(|t| has_links(*t))
                .find(|t| *t > ty);
            match later {
                Some(t) => format!("{t}:"),
                None => "done".to_owned(),
            }
        }
    };
    ops.push(AssociationOp::SetCursor {
        name: IMPORT_CURSOR.to_owned(),
        value: next,
    });
    engine
        .store
        .apply_associations(portal, ops, &[], fence)
        .await?;
    Ok(Some(report))
}

/// Whether the association import has finished.
pub async fn import_done(engine: &Engine, portal: PortalId) -> Result<bool, EngineError> {
    Ok(engine
        .store
        .get_cursor(portal, IMPORT_CURSOR)
        .await?
        .as_deref()
        == Some("done"))
}

/// A full association reconcile pass: every local contact and deal with a HubSpot id, 1,000
/// records per batch read (one read per 1,000 contacts, two per 1,000 deals), repaired both
/// ways, committed page by page.
pub async fn reconcile_pass(
    engine: &Engine,
    portal: PortalId,
    tenure: Option<&Tenure>,
) -> Result<AssociationReport, EngineError> {
    let fence = tenure.map(Tenure::fence);
    let mut report = AssociationReport::default();
    for ty in ObjectType::ALL.into_iter().filter(|t| has_links(*t)) {
        let mut after = None;
        loop {
            if tenure.is_some_and(|t| !t.is_current()) {
                return Err(EngineError::LeaseExpired(portal));
            }
            let (ops, page, last) = sync_page(engine, portal, ty, after, fence).await?;
            if !ops.is_empty() {
                engine
                    .store
                    .apply_associations(portal, ops, &[], fence)
                    .await?;
            }
            report.add(&page);
            match last {
                Some(last) => after = Some(last),
                None => break,
            }
        }
    }
    if report.repaired_local > 0 {
        engine
            .store
            .add_counter(
                portal,
                counters::REPAIRED_LOCAL,
                report.repaired_local as i64,
            )
            .await?;
    }
    if report.repaired_remote > 0 {
        engine
            .store
            .add_counter(
                portal,
                counters::REPAIRED_REMOTE,
                report.repaired_remote as i64,
            )
            .await?;
    }
    Ok(report)
}

/// One page of local records of `ty` after `after`; returns the ops, the report and the last
/// local id of the page (`None` when there was nothing left).
async fn sync_page(
    engine: &Engine,
    portal: PortalId,
    ty: ObjectType,
    after: Option<LocalId>,
    fence: Option<Fence>,
) -> Result<(Vec<AssociationOp>, AssociationReport, Option<LocalId>), EngineError> {
    let filters = [
        Filter::new("hubspot_id", FilterOp::NotNull, Value::Null),
        Filter::new("deleted_at", FilterOp::IsNull, Value::Null),
    ];
    let rows = engine
        .store
        .list_records(portal, ty, after, READ_BATCH as u32, &filters)
        .await?;
    let Some(last) = rows.last().map(|r| r.local_id) else {
        return Ok((Vec::new(), AssociationReport::default(), None));
    };
    let (ops, report) = sync_records(engine, portal, ty, rows, None, fence).await?;
    Ok((ops, report, Some(last)))
}

/// The three-way association merge for local records of one type: reads their HubSpot
/// associations, imports associated records the app lacks, and plans the writes.
async fn sync_records(
    engine: &Engine,
    portal: PortalId,
    ty: ObjectType,
    rows: Vec<LocalRecord>,
    remote_ts: Option<i64>,
    fence: Option<Fence>,
) -> Result<(Vec<AssociationOp>, AssociationReport), EngineError> {
    let mut report = AssociationReport::default();
    let mut ops = Vec::new();
    let rows: Vec<(LocalRecord, HubspotId)> = rows
        .into_iter()
        .filter(|r| !r.deleted)
        .filter_map(|r| r.hubspot_id.map(|h| (r, h)))
        .collect();
    if rows.is_empty() {
        return Ok((ops, report));
    }
    report.records = rows.len() as u64;
    let store = &engine.store;
    let api = engine
        .api(portal)?
        .with_priority(hubsync_hubspot::Priority::Reconcile);
    let ids: Vec<HubspotId> = rows.iter().map(|(_, h)| *h).collect();

    // HubSpot's side, per link: from id → targets (`None`: unknown, leave the record alone).
    let mut remote: BTreeMap<(usize, HubspotId), Vec<HubspotId>> = BTreeMap::new();
    for (li, link) in LINKS.iter().enumerate().filter(|(_, l)| l.from == ty) {
        for chunk in ids.chunks(READ_BATCH) {
            report.reads += 1;
            let response = api.batch_read_associations(ty, link.to, chunk).await?;
            let mut seen: BTreeSet<HubspotId> = BTreeSet::new();
            for read in &response.results {
                seen.insert(read.from);
                if read.next_after.is_some() {
                    tracing::warn!(portal = %portal, object_type = %ty, hubspot_id = %read.from, field = link.field,
                        "more than one page of associations; field left unsynced");
                    continue;
                }
                remote.insert((li, read.from), remote_targets(link, &read.to));
            }
            for id in chunk.iter().filter(|id| !seen.contains(id)) {
                // HubSpot answers "no associations" as a per-input error; anything else about
                // the record leaves it alone.
                let none = response.error_for_id(&id.to_string()).is_none_or(|e| {
                    e.sub_category
                        .as_ref()
                        .and_then(Value::as_str)
                        .is_some_and(|s| s.ends_with("NO_ASSOCIATIONS_FOUND"))
                });
                if none {
                    remote.insert((li, *id), Vec::new());
                }
            }
        }
    }

    // The base.
    let local_ids: Vec<LocalId> = rows.iter().map(|(r, _)| r.local_id).collect();
    let mut bases: BTreeMap<(LocalId, String), Vec<HubspotId>> = BTreeMap::new();
    for b in store.get_association_bases(portal, ty, &local_ids).await? {
        bases.insert((b.local_id, b.field), b.targets);
    }

    // Translation tables, per associated type: local → HubSpot and HubSpot → local.
    let mut to_hubspot: BTreeMap<(ObjectType, LocalId), Target> = BTreeMap::new();
    let mut to_local: BTreeMap<(ObjectType, HubspotId), LocalId> = BTreeMap::new();
    for target_ty in LINKS
        .iter()
        .filter(|l| l.from == ty)
        .map(|l| l.to)
        .collect::<BTreeSet<_>>()
    {
        let mut local_wanted = BTreeSet::new();
        let mut remote_wanted = BTreeSet::new();
        for (li, link) in LINKS
            .iter()
            .enumerate()
            .filter(|(_, l)| l.from == ty && l.to == target_ty)
        {
            for (row, h) in &rows {
                local_wanted.extend(local_targets(&row.fields, link));
                if let Some(r) = remote.get(&(li, *h)) {
                    remote_wanted.extend(r.iter().copied());
                }
                if let Some(b) = bases.get(&(row.local_id, link.field.to_owned())) {
                    remote_wanted.extend(b.iter().copied());
                }
            }
        }
        let local_wanted: Vec<LocalId> = local_wanted.into_iter().collect();
        for row in store.get_records(portal, target_ty, &local_wanted).await? {
            let target = if row.deleted {
                Target::Gone
            } else {
                row.hubspot_id.map_or(Target::Waiting, Target::At)
            };
            to_hubspot.insert((target_ty, row.local_id), target);
        }
        let remote_wanted: Vec<HubspotId> = remote_wanted.into_iter().collect();
        let mut found = store
            .local_ids_by_hubspot_ids(portal, target_ty, &remote_wanted)
            .await?;
        // Associated records HubSpot has and the app lacks: import them (the one merge).
        let missing: Vec<HubspotId> = remote_wanted
            .iter()
            .filter(|h| !found.contains_key(h))
            .copied()
            .collect();
        if !missing.is_empty() {
            for chunk in missing.chunks(hubsync_hubspot::model::MAX_BATCH_INPUTS) {
                report.reads += 1;
                let objects =
                    crate::inbound::read_objects(engine, portal, target_ty, chunk).await?;
                let states = crate::inbound::remote_states(engine, target_ty, objects).await?;
                crate::apply::plan_and_apply(
                    engine,
                    portal,
                    states,
                    crate::apply::Source::Reconcile,
                    |_| Vec::new(),
                    fence,
                )
                .await?;
            }
            found.extend(
                store
                    .local_ids_by_hubspot_ids(portal, target_ty, &missing)
                    .await?,
            );
        }
        for (h, l) in found {
            to_local.insert((target_ty, h), l);
        }
    }
    // Local links HubSpot does not hold yet translate back through the local side.
    for ((target_ty, local), target) in &to_hubspot {
        if let Target::At(h) = target {
            to_local.entry((*target_ty, *h)).or_insert(*local);
        }
    }

    // The merge, field by field.
    let policy = engine.settings.policy(ty);
    let now = now_ms();
    for (row, hubspot_id) in &rows {
        let mut requeue = false;
        for (li, link) in LINKS.iter().enumerate().filter(|(_, l)| l.from == ty) {
            let Some(r) = remote.get(&(li, *hubspot_id)) else {
                continue;
            };
            let local_ids = local_targets(&row.fields, link);
            let mut l = Vec::new();
            let mut pending = Vec::new();
            for id in &local_ids {
                match to_hubspot.get(&(link.to, *id)) {
                    Some(Target::At(h)) => l.push(*h),
                    // Exists locally, not yet in HubSpot: the outbound worker links it later.
                    Some(Target::Waiting) => pending.push(*id),
                    Some(Target::Gone) | None => {}
                }
            }
            let l = sorted(l);
            let stored = bases.get(&(row.local_id, link.field.to_owned()));
            let b = stored.cloned().unwrap_or_default();
            if link.single && !pending.is_empty() {
                // The app's new link has not reached HubSpot yet; the push settles it.
                continue;
            }
            let (merged, conflict) = merge_link(
                link,
                &b,
                &l,
                r,
                &policy,
                row.updated_at,
                remote_ts.unwrap_or(now),
            );
            let base_changed = stored != Some(r);
            if merged == l && merged == *r {
                if base_changed {
                    ops.push(AssociationOp::SaveBase(AssociationBase {
                        object_type: ty,
                        local_id: row.local_id,
                        field: link.field.to_owned(),
                        targets: r.clone(),
                        synced_at: now,
                    }));
                }
                report.equal += 1;
                continue;
            }
            if merged != l {
                // Write the merged links locally: every one must be a local record.
                let mut new_ids: Vec<LocalId> = Vec::new();
                let mut complete = true;
                for h in &merged {
                    match to_local.get(&(link.to, *h)) {
                        Some(id) => new_ids.push(*id),
                        None => complete = false,
                    }
                }
                if !complete {
                    report.deferred += 1;
                    continue;
                }
                new_ids.extend(pending.iter().copied());
                new_ids.sort();
                new_ids.dedup();
                ops.push(AssociationOp::SetLocal {
                    object_type: ty,
                    local_id: row.local_id,
                    field: link.field.to_owned(),
                    expected: row.fields.get(link.field).clone(),
                    value: local_value(link, &new_ids),
                });
                report.repaired_local += 1;
            }
            if merged != *r {
                requeue = true;
            }
            if let Some(mut c) = conflict {
                let as_local = |ids: &[HubspotId]| -> Value {
                    let locals: Vec<LocalId> = ids
                        .iter()
                        .filter_map(|h| to_local.get(&(link.to, *h)).copied())
                        .collect();
                    local_value(link, &locals)
                };
                c.base = as_local(&b);
                c.remote = as_local(r);
                c.local = row.fields.get(link.field).clone();
                ops.push(AssociationOp::Conflicts {
                    object_type: ty,
                    local_id: row.local_id,
                    hubspot_id: Some(*hubspot_id),
                    conflicts: vec![c],
                });
                ops.push(AssociationOp::Counter {
                    name: counters::CONFLICTS.to_owned(),
                    delta: 1,
                });
                report.conflicts += 1;
            }
            // The base is what HubSpot holds; a queued push moves it on.
            ops.push(AssociationOp::SaveBase(AssociationBase {
                object_type: ty,
                local_id: row.local_id,
                field: link.field.to_owned(),
                targets: r.clone(),
                synced_at: now,
            }));
        }
        if requeue {
            ops.push(AssociationOp::Enqueue {
                object_type: ty,
                local_id: row.local_id,
            });
            report.repaired_remote += 1;
        }
    }
    if report.repaired_local > 0 {
        ops.push(AssociationOp::Counter {
            name: COUNTER_APPLIED.to_owned(),
            delta: report.repaired_local as i64,
        });
    }
    Ok((ops, report))
}

/// The three-way merge of one link field, in HubSpot ids: base `b`, local `l`, remote `r`.
/// Returns the merged targets and, for a single link changed on both sides, the conflict.
fn merge_link(
    link: &Link,
    b: &[HubspotId],
    l: &[HubspotId],
    r: &[HubspotId],
    policy: &hubsync_core::PolicySet,
    local_ts: i64,
    remote_ts: i64,
) -> (Vec<HubspotId>, Option<Conflict>) {
    if !link.single {
        // Element by element: kept if both sides kept it, added if either side added it.
        let all: BTreeSet<HubspotId> = b.iter().chain(l).chain(r).copied().collect();
        let merged = all
            .into_iter()
            .filter(|x| {
                if b.contains(x) {
                    l.contains(x) && r.contains(x)
                } else {
                    l.contains(x) || r.contains(x)
                }
            })
            .collect();
        return (merged, None);
    }
    if l == r {
        return (r.to_vec(), None);
    }
    if l == b {
        return (r.to_vec(), None);
    }
    if r == b {
        return (l.to_vec(), None);
    }
    let p = policy.for_field(link.field);
    let winner = match p {
        ConflictPolicy::RemoteWins => Side::Remote,
        ConflictPolicy::LocalWins => Side::Local,
        ConflictPolicy::LatestWins if local_ts > remote_ts => Side::Local,
        ConflictPolicy::LatestWins => Side::Remote,
    };
    let merged = match winner {
        Side::Local => l.to_vec(),
        Side::Remote => r.to_vec(),
    };
    let conflict = Conflict {
        field: link.field.to_owned(),
        base: json!(b.iter().map(|h| h.to_string()).collect::<Vec<_>>()),
        local: json!(l.iter().map(|h| h.to_string()).collect::<Vec<_>>()),
        local_ts,
        remote: json!(r.iter().map(|h| h.to_string()).collect::<Vec<_>>()),
        remote_ts,
        policy: p,
        winner,
    };
    (merged, Some(conflict))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(ids: &[u64]) -> Vec<HubspotId> {
        ids.iter().map(|i| HubspotId(*i)).collect()
    }

    #[test]
    fn set_links_merge_element_by_element() {
        let link = &LINKS[2];
        let policy = hubsync_core::PolicySet::default();
        // Base {1,2}; local removed 1 and added 3; remote added 4.
        let (merged, conflict) = merge_link(
            link,
            &h(&[1, 2]),
            &h(&[2, 3]),
            &h(&[1, 2, 4]),
            &policy,
            0,
            0,
        );
        assert_eq!(merged, h(&[2, 3, 4]));
        assert!(conflict.is_none());
    }

    #[test]
    fn single_link_changed_on_both_sides_is_a_conflict_settled_by_policy() {
        let link = &LINKS[0];
        let mut policy = hubsync_core::PolicySet::default();
        let (merged, conflict) = merge_link(link, &h(&[1]), &h(&[2]), &h(&[3]), &policy, 10, 5);
        assert_eq!(merged, h(&[2]), "latest wins: the local change is newer");
        assert_eq!(conflict.map(|c| c.winner), Some(Side::Local));
        policy
            .fields
            .insert("company_id".to_owned(), ConflictPolicy::RemoteWins);
        let (merged, _) = merge_link(link, &h(&[1]), &h(&[2]), &h(&[3]), &policy, 10, 5);
        assert_eq!(merged, h(&[3]));
    }

    #[test]
    fn one_sided_single_link_changes_take_that_side() {
        let link = &LINKS[1];
        let policy = hubsync_core::PolicySet::default();
        assert_eq!(
            merge_link(link, &h(&[1]), &h(&[1]), &h(&[]), &policy, 0, 0).0,
            h(&[])
        );
        assert_eq!(
            merge_link(link, &h(&[1]), &h(&[2]), &h(&[1]), &policy, 0, 0).0,
            h(&[2])
        );
    }

    #[test]
    fn primary_company_is_preferred_over_other_links() {
        let read: Vec<AssociatedRecord> = serde_json::from_value(json!([
            {"toObjectId": 5, "associationTypes": [{"category": "HUBSPOT_DEFINED", "typeId": 279, "label": null}]},
            {"toObjectId": 9, "associationTypes": [{"category": "HUBSPOT_DEFINED", "typeId": 1, "label": "Primary"},
                                                   {"category": "HUBSPOT_DEFINED", "typeId": 279, "label": null}]}
        ]))
        .unwrap();
        assert_eq!(remote_targets(&LINKS[0], &read), h(&[9]));
        assert_eq!(remote_targets(&LINKS[2], &read), h(&[5, 9]));
    }

    #[test]
    fn association_events_touch_the_record_holding_the_field() {
        let event: WebhookEvent = hubsync_hubspot::webhooks::parse_delivery(
            br#"[{"eventId":1,"subscriptionId":1,"portalId":1,"appId":1,"occurredAt":1,
                 "subscriptionType":"company.associationChange","attemptNumber":0,"objectId":7,
                 "associationType":"COMPANY_TO_CONTACT","fromObjectId":7,"toObjectId":8,
                 "associationRemoved":false,"isPrimaryAssociation":false}]"#,
        )
        .unwrap()
        .remove(0);
        assert_eq!(
            touched_records(&event),
            vec![(ObjectType::Contacts, HubspotId(8))]
        );
    }
}
