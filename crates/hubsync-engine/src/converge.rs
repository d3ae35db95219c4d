//! The convergence check: are both sides identical?
//!
//! Reads every live HubSpot record (list API) and every live local row, maps both into the
//! unified model, and compares them field by field. Reports every difference, every record on
//! one side only, every HubSpot record linked from two local rows, and every email held by two
//! HubSpot contacts. Used by the demo, the end-to-end tests and the reliability suite; it only
//! reads, so it is safe against a real portal too.

use std::collections::{BTreeMap, BTreeSet};

use hubsync_core::{FieldMap, HubspotId, LocalId, ObjectType, PortalId};
use hubsync_hubspot::model::ListParams;
use serde::Serialize;

use crate::inbound::remote_states;
use crate::{Engine, EngineError, property_fields};

/// One record whose two sides differ.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Difference {
    /// The local row.
    pub local_id: LocalId,
    /// The HubSpot record.
    pub hubspot_id: HubspotId,
    /// The fields that differ, with (local, HubSpot) values.
    pub fields: BTreeMap<String, (serde_json::Value, serde_json::Value)>,
}

/// The comparison of one object type.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct TypeConvergence {
    /// Live HubSpot records.
    pub remote_live: usize,
    /// Live local rows.
    pub local_live: usize,
    /// Records identical on both sides.
    pub equal: usize,
    /// Records whose fields differ.
    pub differences: Vec<Difference>,
    /// Live HubSpot records no live local row is linked to.
    pub missing_locally: Vec<HubspotId>,
    /// Live local rows with no live HubSpot record.
    pub missing_remotely: Vec<LocalId>,
    /// HubSpot records linked from more than one live local row.
    pub duplicate_links: Vec<HubspotId>,
}

impl TypeConvergence {
    /// Whether both sides hold exactly the same records.
    pub fn is_identical(&self) -> bool {
        self.differences.is_empty()
            && self.missing_locally.is_empty()
            && self.missing_remotely.is_empty()
            && self.duplicate_links.is_empty()
    }
}

/// The comparison of a whole portal.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Convergence {
    /// Per object type.
    pub types: BTreeMap<ObjectType, TypeConvergence>,
    /// Emails held by more than one live HubSpot contact.
    pub duplicate_emails: Vec<String>,
}

impl Convergence {
    /// Whether both sides are identical and HubSpot holds no duplicate.
    pub fn is_identical(&self) -> bool {
        self.duplicate_emails.is_empty() && self.types.values().all(TypeConvergence::is_identical)
    }
}

/// Compares both sides of a portal.
pub async fn check(engine: &Engine, portal: PortalId) -> Result<Convergence, EngineError> {
    let mut report = Convergence::default();
    let mut emails: BTreeMap<String, usize> = BTreeMap::new();
    for ty in ObjectType::ALL {
        let remote = remote_records(engine, portal, ty).await?;
        if ty == ObjectType::Contacts {
            for fields in remote.values() {
                if let Some(email) = fields
                    .get("email_addresses")
                    .as_array()
                    .and_then(|a| a.first())
                    .and_then(|e| e.as_str())
                {
                    *emails.entry(email.to_ascii_lowercase()).or_default() += 1;
                }
            }
        }
        report
            .types
            .insert(ty, compare(engine, portal, ty, &remote).await?);
    }
    report.duplicate_emails = emails
        .into_iter()
        .filter(|(_, n)| *n > 1)
        .map(|(e, _)| e)
        .collect();
    Ok(report)
}

async fn remote_records(
    engine: &Engine,
    portal: PortalId,
    ty: ObjectType,
) -> Result<BTreeMap<HubspotId, FieldMap>, EngineError> {
    let api = engine
        .api(portal)?
        .with_priority(hubsync_hubspot::Priority::Reconcile);
    let mut out = BTreeMap::new();
    let mut after = None;
    loop {
        let page = api
            .list_page(
                ty,
                &ListParams {
                    limit: Some(100),
                    after: after.clone(),
                    properties: engine.read_properties(ty),
                    archived: false,
                },
            )
            .await?;
        for state in remote_states(engine, ty, page.results).await? {
            out.insert(state.hubspot_id, state.fields);
        }
        match page.next_after {
            Some(next) => after = Some(next),
            None => return Ok(out),
        }
    }
}

async fn compare(
    engine: &Engine,
    portal: PortalId,
    ty: ObjectType,
    remote: &BTreeMap<HubspotId, FieldMap>,
) -> Result<TypeConvergence, EngineError> {
    let store = &engine.store;
    let mut result = TypeConvergence {
        remote_live: remote.len(),
        ..TypeConvergence::default()
    };
    let mut linked: BTreeMap<HubspotId, usize> = BTreeMap::new();
    let mut after = None;
    loop {
        let rows = store.list_records(portal, ty, after, 500, &[]).await?;
        let Some(last) = rows.last() else { break };
        after = Some(last.local_id);
        for row in rows.into_iter().filter(|r| !r.deleted) {
            result.local_live += 1;
            let Some(id) = row.hubspot_id else {
                result.missing_remotely.push(row.local_id);
                continue;
            };
            let id = store.resolve_alias(portal, ty, id).await?;
            *linked.entry(id).or_default() += 1;
            let Some(remote_fields) = remote.get(&id) else {
                result.missing_remotely.push(row.local_id);
                continue;
            };
            let local = engine
                .mappings
                .normalize(ty, &property_fields(&row.fields))
                .unwrap_or_else(|_| property_fields(&row.fields));
            let diff = local.diff(remote_fields);
            if diff.is_empty() {
                result.equal += 1;
            } else {
                let fields = diff
                    .into_keys()
                    .map(|f| {
                        let pair = (local.get(&f).clone(), remote_fields.get(&f).clone());
                        (f, pair)
                    })
                    .collect();
                result.differences.push(Difference {
                    local_id: row.local_id,
                    hubspot_id: id,
                    fields,
                });
            }
        }
    }
    let linked_ids: BTreeSet<HubspotId> = linked.keys().copied().collect();
    result.missing_locally = remote
        .keys()
        .filter(|id| !linked_ids.contains(id))
        .copied()
        .collect();
    result.duplicate_links = linked
        .into_iter()
        .filter(|(_, n)| *n > 1)
        .map(|(id, _)| id)
        .collect();
    Ok(result)
}
