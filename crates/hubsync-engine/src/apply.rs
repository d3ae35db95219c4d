//! The one place a HubSpot state meets the local state.
//!
//! Inbound events and reconciliation passes both turn what they learned about HubSpot records
//! into [`RemoteState`]s and hand them to [`plan`], which for each record: finds the local row
//! (by HubSpot id, alias-aware, or by the link key on first sync), drops echoes of our own writes
//! (fingerprint/base), runs the three-way merge, and emits the store operations that apply the
//! result in one transaction — app row changes, the new base, recorded conflicts, an outbox item
//! when a local edit must still go to HubSpot, and an app notification.

use std::collections::{BTreeMap, BTreeSet};

use hubsync_core::merge::{MergeInput, merge};
use hubsync_core::{FieldMap, Fingerprint, HubspotId, LocalId, ObjectType, PortalId};
use hubsync_store::{
    ApplyOp, Fence, Filter, FilterOp, InboundUpsert, LocalRecord, OutboxOp, Precondition, SyncState,
};
use serde_json::json;

use crate::{Engine, EngineError, counters, property_fields};

/// What HubSpot holds for one record, in the unified model.
#[derive(Debug, Clone)]
pub struct RemoteState {
    /// The object type.
    pub object_type: ObjectType,
    /// The HubSpot record.
    pub hubspot_id: HubspotId,
    /// Its synced fields, mapped to the unified model.
    pub fields: FieldMap,
    /// HubSpot's last-modified time (epoch ms).
    pub updated_at: i64,
    /// Per-field change times where known (propertyChange `occurredAt`).
    pub field_ts: BTreeMap<String, i64>,
    /// `Some`: only these fields are known (the others are taken as unchanged).
    pub scope: Option<BTreeSet<String>>,
    /// The record carries a `hubsync_id`: hubsync created it.
    pub hubsync_id: Option<String>,
}

/// What [`plan`] decided, for counting.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PlanStats {
    /// Records whose local row was written or created.
    pub applied: u64,
    /// Records that were echoes of our writes (fingerprint/base path).
    pub echoes: u64,
    /// Conflicts settled.
    pub conflicts: u64,
    /// Records re-queued for HubSpot because a local edit won.
    pub requeued: u64,
    /// Records linked to an existing local row by key.
    pub linked: u64,
}

/// Where the HubSpot states came from: webhook events (where an unchanged state is an echo of
/// our own write, and counted as one) or a reconciliation read (where it is simply in sync).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// Webhook events.
    Events,
    /// A list or search read by the reconciler.
    Reconcile,
}

/// Plans the store operations for a set of HubSpot states. Reads only; the caller applies the
/// returned ops in one transaction (together with whatever else it consumed).
pub async fn plan(
    engine: &Engine,
    portal: PortalId,
    states: Vec<RemoteState>,
    source: Source,
) -> Result<(Vec<ApplyOp>, PlanStats), EngineError> {
    let store = &engine.store;
    let mut ops = Vec::new();
    let mut stats = PlanStats::default();
    // A local row linked earlier in this batch must not be linked twice.
    let mut linked_rows: BTreeSet<(ObjectType, i64)> = BTreeSet::new();
    // Linking by key only matters while the app has rows HubSpot has never seen; skip the
    // lookups (a scan of the key column) when it has none, as in most imports.
    let mut can_link: BTreeMap<ObjectType, bool> = BTreeMap::new();
    for ty in states
        .iter()
        .map(|s| s.object_type)
        .collect::<BTreeSet<_>>()
    {
        let unlinked = [
            Filter::new("hubspot_id", FilterOp::IsNull, serde_json::Value::Null),
            Filter::new("deleted_at", FilterOp::IsNull, serde_json::Value::Null),
        ];
        can_link.insert(ty, store.count_records(portal, ty, &unlinked).await? > 0);
    }

    // The rows and sync states of the whole batch, read in a few queries rather than a few
    // per record.
    let mut known: BTreeMap<(ObjectType, HubspotId), LocalRecord> = BTreeMap::new();
    let mut known_sync: BTreeMap<(ObjectType, LocalId), Option<SyncState>> = BTreeMap::new();
    for &ty in can_link.keys() {
        let ids: Vec<HubspotId> = states
            .iter()
            .filter(|s| s.object_type == ty)
            .map(|s| s.hubspot_id)
            .collect();
        let found = store.find_by_hubspot_ids(portal, ty, &ids).await?;
        let local_ids: Vec<LocalId> = found.values().map(|r| r.local_id).collect();
        known_sync.extend(local_ids.iter().map(|id| ((ty, *id), None)));
        for sync in store.get_sync_states(portal, ty, &local_ids).await? {
            known_sync.insert((ty, sync.local_id), Some(sync));
        }
        known.extend(found.into_iter().map(|(id, record)| ((ty, id), record)));
    }

    for mut state in states {
        let ty = state.object_type;
        let mut local = known.get(&(ty, state.hubspot_id)).cloned();
        let mut linking = false;
        if local.is_none() {
            if state.hubsync_id.is_some() {
                // hubsync created this record; the outbound acknowledgement links it (or
                // already did under the id this state was read by). Not an app change.
                stats.echoes += 1;
                if source == Source::Events {
                    ops.push(counter(counters::ECHO_ORIGIN, 1));
                }
                continue;
            }
            let candidate = if can_link.get(&ty).copied().unwrap_or(false) {
                link_candidate(engine, portal, &state).await?
            } else {
                None
            };
            if let Some(candidate) = candidate
                && linked_rows.insert((ty, candidate.local_id.0))
            {
                local = Some(candidate);
                linking = true;
            }
        }

        let Some(local) = local else {
            // A record the app has never seen: create its row.
            let changes = state
                .fields
                .iter()
                .map(|(k, v)| (k.to_owned(), v.clone()))
                .collect();
            ops.push(ApplyOp::Require(Precondition::NoRow {
                object_type: ty,
                hubspot_id: state.hubspot_id,
            }));
            ops.push(ApplyOp::Upsert(InboundUpsert {
                object_type: ty,
                local_id: None,
                hubspot_id: state.hubspot_id,
                changes,
                base: state.fields.clone(),
                base_ts: base_ts_for(&state.fields, &state),
                fp_received: Some(Fingerprint::of(&state.fields)),
                remote_updated_at: Some(state.updated_at),
            }));
            ops.push(notify(
                portal,
                ty,
                "created",
                None,
                state.hubspot_id,
                &state.fields,
            ));
            stats.applied += 1;
            continue;
        };

        if local.deleted {
            // The app deleted it; its outbox delete archives it in HubSpot. A remote edit does
            // not resurrect it.
            continue;
        }

        let stored_sync = match known_sync.get(&(ty, local.local_id)) {
            Some(sync) => sync.clone(),
            // A row found by its link key.
            None => store.get_sync_state(portal, ty, local.local_id).await?,
        };
        // A row linked by key has no sync history with this HubSpot record.
        let sync = if linking { None } else { stored_sync.clone() };
        let base = sync.as_ref().and_then(|s| s.base.clone());
        if let Some(sync) = &sync
            && sync
                .remote_updated_at
                .is_some_and(|seen| state.updated_at < seen)
        {
            // A read that raced a push: older than what the push wrote, it says nothing about
            // the fields written since (their base is newer); it still tells the others.
            let known: BTreeSet<String> = match state.scope.take() {
                Some(scope) => scope,
                None => state
                    .fields
                    .iter()
                    .map(|(field, _)| field.to_owned())
                    .collect(),
            };
            state.scope = Some(
                known
                    .into_iter()
                    .filter(|f| sync.base_ts.get(f).is_none_or(|ts| *ts <= state.updated_at))
                    .collect(),
            );
        }
        if is_echo(&state, base.as_ref(), sync.as_ref()) {
            stats.echoes += 1;
            if source == Source::Events {
                ops.push(counter(counters::ECHO_FINGERPRINT, 1));
            }
            continue;
        }

        let local_fields = property_fields(&local.fields);
        let policy = engine.settings.policy(ty);
        let outcome = merge(MergeInput {
            base: base.as_ref(),
            local: &local_fields,
            local_ts: local.updated_at,
            remote: &state.fields,
            remote_ts: state.updated_at,
            remote_field_ts: Some(&state.field_ts),
            remote_scope: state.scope.as_ref(),
            policy: &policy,
        });

        if !outcome.conflicts.is_empty() {
            stats.conflicts += outcome.conflicts.len() as u64;
            ops.push(counter(counters::CONFLICTS, outcome.conflicts.len() as i64));
            ops.push(ApplyOp::Conflicts {
                object_type: ty,
                local_id: Some(local.local_id),
                hubspot_id: Some(state.hubspot_id),
                conflicts: outcome.conflicts.clone(),
            });
        }
        let local_changed = !outcome.local_changes.is_empty();
        // The stored base is what HubSpot holds now: where a local edit still has to go out,
        // HubSpot keeps its value until the outbound worker writes it.
        let mut stored_base = outcome.merged.clone();
        for field in outcome.remote_changes.keys() {
            let known = state
                .scope
                .as_ref()
                .is_none_or(|scope| scope.contains(field));
            let held = if known {
                state.fields.get(field).clone()
            } else {
                base.as_ref()
                    .map(|b| b.get(field).clone())
                    .unwrap_or_default()
            };
            stored_base.set(field.clone(), held);
        }
        // A base value HubSpot changed is as new as this state. The time must move with the
        // value: a read that raced this one and arrives later is filtered by these times
        // (above), and an old time would let it put the old value back.
        let (remote_updated_at, base_ts) = {
            let (seen, mut base_ts) = sync
                .map(|s| (s.remote_updated_at, s.base_ts))
                .unwrap_or_default();
            let fields: BTreeSet<&str> = stored_base
                .keys()
                .chain(base.iter().flat_map(FieldMap::keys))
                .collect();
            for field in fields {
                let ts = state
                    .field_ts
                    .get(field)
                    .copied()
                    .unwrap_or(state.updated_at);
                let moved = base
                    .as_ref()
                    .is_none_or(|b| b.get(field) != stored_base.get(field));
                let slot = base_ts.entry(field.to_owned()).or_insert(ts);
                if moved {
                    *slot = (*slot).max(ts);
                }
            }
            (
                seen.unwrap_or(state.updated_at).max(state.updated_at),
                base_ts,
            )
        };
        ops.push(ApplyOp::Require(Precondition::Unchanged {
            object_type: ty,
            local_id: local.local_id,
            updated_at: local.updated_at,
            sync: stored_sync.map(Box::new),
        }));
        ops.push(ApplyOp::Upsert(InboundUpsert {
            object_type: ty,
            local_id: Some(local.local_id),
            hubspot_id: state.hubspot_id,
            changes: outcome.local_changes,
            base: stored_base,
            base_ts,
            fp_received: Some(Fingerprint::of(&state.fields)),
            remote_updated_at: Some(remote_updated_at),
        }));
        if !outcome.remote_changes.is_empty() {
            stats.requeued += 1;
            ops.push(ApplyOp::Enqueue {
                object_type: ty,
                local_id: local.local_id,
                op: OutboxOp::Upsert,
            });
        }
        if local_changed {
            stats.applied += 1;
            ops.push(notify(
                portal,
                ty,
                "updated",
                Some(local.local_id.0),
                state.hubspot_id,
                &outcome.merged,
            ));
        }
        if linking {
            stats.linked += 1;
        }
    }
    if stats.applied > 0 {
        ops.push(counter(counters::APPLIED, stats.applied as i64));
    }
    Ok((ops, stats))
}

/// How many times [`plan_and_apply`] plans again when records changed under its plan.
const STALE_RETRIES: u32 = 5;

/// [`plan`]s `states` and applies the plan, together with `extra` (cursor advances, counters),
/// in one transaction. When a record changed between the plan's reads and the commit
/// ([`hubsync_store::StoreError::Stale`]: an app edit, an outbound acknowledgement, another
/// worker's apply), nothing was written and it plans again from the current state.
pub async fn plan_and_apply(
    engine: &Engine,
    portal: PortalId,
    states: Vec<RemoteState>,
    source: Source,
    extra: impl Fn(&PlanStats) -> Vec<ApplyOp>,
    fence: Option<Fence>,
) -> Result<PlanStats, EngineError> {
    let mut attempt = 1;
    loop {
        let (mut ops, stats) = plan(engine, portal, states.clone(), source).await?;
        ops.extend(extra(&stats));
        match engine.store.apply_inbound(portal, ops, &[], fence).await {
            Ok(_) => return Ok(stats),
            Err(error) if error.is_stale() && attempt < STALE_RETRIES => {
                tracing::debug!(portal = %portal, %error, attempt, "plan went stale before its commit; planning again");
                attempt += 1;
            }
            Err(error) => return Err(error.into()),
        }
    }
}

/// An echo: HubSpot holds exactly what we last synced or last sent.
fn is_echo(state: &RemoteState, base: Option<&FieldMap>, sync: Option<&SyncState>) -> bool {
    match &state.scope {
        None => {
            base == Some(&state.fields)
                || sync
                    .and_then(|s| s.fp_sent)
                    .is_some_and(|fp| fp == Fingerprint::of(&state.fields))
        }
        Some(scope) => base.is_some_and(|b| scope.iter().all(|f| b.get(f) == state.fields.get(f))),
    }
}

/// On first sync, an unlinked local row with the same link key (email for contacts, domain for
/// companies).
async fn link_candidate(
    engine: &Engine,
    portal: PortalId,
    state: &RemoteState,
) -> Result<Option<LocalRecord>, EngineError> {
    let (field, value) = match state.object_type {
        ObjectType::Contacts => match state
            .fields
            .get("email_addresses")
            .as_array()
            .and_then(|a| a.first())
        {
            Some(email) => ("email_addresses", email.clone()),
            None => return Ok(None),
        },
        ObjectType::Companies => match state.fields.get("domain") {
            serde_json::Value::Null => return Ok(None),
            domain => ("domain", domain.clone()),
        },
        ObjectType::Deals => return Ok(None),
    };
    let candidates = engine
        .store
        .find_by_key(portal, state.object_type, field, &value)
        .await?;
    Ok(candidates
        .into_iter()
        .find(|r| r.hubspot_id.is_none() && !r.deleted))
}

fn base_ts_for(fields: &FieldMap, state: &RemoteState) -> BTreeMap<String, i64> {
    fields
        .keys()
        .map(|k| {
            (
                k.to_owned(),
                state.field_ts.get(k).copied().unwrap_or(state.updated_at),
            )
        })
        .collect()
}

pub(crate) fn counter(name: &str, delta: i64) -> ApplyOp {
    ApplyOp::Counter {
        name: name.to_owned(),
        delta,
    }
}

/// The app notification of one applied change, in the unified shape.
pub(crate) fn notify(
    portal: PortalId,
    ty: ObjectType,
    kind: &str,
    local_id: Option<i64>,
    hubspot_id: HubspotId,
    fields: &FieldMap,
) -> ApplyOp {
    ApplyOp::NotifyApp {
        payload: json!({
            "type": format!("{}.{kind}", ty.singular()),
            "portal_id": portal,
            "object_type": ty.plural(),
            "id": local_id,
            "hubspot_id": hubspot_id,
            "record": fields.to_unified(),
        }),
    }
}
