//! Reads through to HubSpot (`?source=remote`): a listing without filters is a list page, one
//! with filters a search whose `filterGroups` come from the mapping's declarative rules; a
//! single record is a read by its HubSpot id. Calls go through the portal's interactive budget
//! and a 429 is passed on to the caller (with the budget and `Retry-After`), never retried here.
//!
//! Records come back in the unified shape; `id` is the local id when the mirror holds the
//! record (`null` otherwise), and `sync` describes the mirror's copy.

use std::collections::HashMap;

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use hubsync_core::record::CUSTOM_PREFIX;
use hubsync_core::{FieldMap, HubspotId, ObjectType, PortalId};
use hubsync_hubspot::PortalClient;
use hubsync_hubspot::model::{
    Filter as SearchFilter, FilterGroup, FilterOperator, HubspotObject, ListParams, ObjectKey,
    SearchRequest,
};
use hubsync_mapping::FilterGroup as MappedGroup;
use hubsync_store::{Filter, FilterOp, LocalRecord};
use serde_json::{Map, Value, json};

use super::Shared;
use super::auth::Caller;
use super::cursor::Cursor;
use super::error::ApiError;
use super::records::{self, SyncStatus, SyncView};
use super::resources::ListQuery;

/// The portal's HubSpot client for an interactive read, or 503 when it is not connected.
fn client(shared: &Shared, portal: PortalId) -> Result<PortalClient, ApiError> {
    let client = shared.engine.api(portal).map_err(|_| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "portal_not_connected",
            format!("portal {portal} has no HubSpot connection; read from the mirror instead"),
        )
    })?;
    Ok(client.interactive(shared.config.remote_max_wait))
}

/// HubSpot's operator for the mapping's spelling of it.
fn operator(name: &str) -> Result<FilterOperator, ApiError> {
    Ok(match name {
        "EQ" => FilterOperator::Eq,
        "NEQ" => FilterOperator::Neq,
        "LT" => FilterOperator::Lt,
        "LTE" => FilterOperator::Lte,
        "GT" => FilterOperator::Gt,
        "GTE" => FilterOperator::Gte,
        "BETWEEN" => FilterOperator::Between,
        "IN" => FilterOperator::In,
        "NOT_IN" => FilterOperator::NotIn,
        "HAS_PROPERTY" => FilterOperator::HasProperty,
        "NOT_HAS_PROPERTY" => FilterOperator::NotHasProperty,
        "CONTAINS_TOKEN" => FilterOperator::ContainsToken,
        "NOT_CONTAINS_TOKEN" => FilterOperator::NotContainsToken,
        other => {
            return Err(ApiError::internal(&format!(
                "the mapping produced an unknown search operator `{other}`"
            )));
        }
    })
}

/// The mapping's filter groups as the client's search request types.
pub fn search_groups(groups: Vec<MappedGroup>) -> Result<Vec<FilterGroup>, ApiError> {
    groups
        .into_iter()
        .map(|g| {
            let filters = g
                .filters
                .into_iter()
                .map(|f| {
                    Ok(SearchFilter {
                        property_name: f.property_name,
                        operator: operator(&f.operator)?,
                        value: f.value,
                        values: f.values.unwrap_or_default(),
                        high_value: f.high_value,
                    })
                })
                .collect::<Result<Vec<_>, ApiError>>()?;
            Ok(FilterGroup { filters })
        })
        .collect()
}

/// `GET /unified/crm/{type}?source=remote`.
pub async fn list(
    shared: &Shared,
    caller: Caller,
    ty: ObjectType,
    query: ListQuery,
) -> Result<Response, ApiError> {
    let rules = shared.engine.mappings.filter_rules(ty);
    let filters = rules.parse(query.filters.iter().map(|(k, v)| (k, v)))?;
    let groups = rules.to_filter_groups(&filters)?;
    let after = match query.cursor {
        None => None,
        Some(Cursor::Remote(after)) => Some(after),
        Some(Cursor::Local(_)) => {
            return Err(ApiError::bad_request(
                "bad_cursor",
                "this cursor belongs to a mirror listing; drop `source=remote` to use it",
            )
            .field("cursor"));
        }
    };
    let mut properties = shared.engine.read_properties(ty);
    for f in &filters {
        if let Some(custom) = f.field.strip_prefix(CUSTOM_PREFIX)
            && !properties.iter().any(|p| p == custom)
        {
            properties.push(custom.to_owned());
        }
    }
    let api = client(shared, caller.portal)?;
    let (objects, next_after) = if groups.is_empty() {
        let page = api
            .list_page(
                ty,
                &ListParams {
                    limit: Some(query.limit),
                    after,
                    properties,
                    archived: false,
                },
            )
            .await?;
        (page.results, page.next_after)
    } else {
        let search = SearchRequest {
            filter_groups: search_groups(groups)?,
            sorts: Vec::new(),
            query: None,
            properties,
            limit: query.limit,
            after,
        };
        let page = api.search(ty, &search).await?;
        (page.results, page.next_after)
    };
    let results = unified(shared, caller.portal, ty, objects).await?;
    let next_cursor = next_after.map(|a| Cursor::Remote(a).encode());
    Ok(Json(json!({"results": results, "next_cursor": next_cursor})).into_response())
}

/// `GET /unified/crm/{type}/{id}?source=remote`, for a record the mirror holds.
pub async fn get(
    shared: &Shared,
    caller: Caller,
    ty: ObjectType,
    record: &LocalRecord,
) -> Result<Response, ApiError> {
    let hubspot_id = record.hubspot_id.ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "not_in_hubspot",
            "the record has not reached HubSpot yet",
        )
    })?;
    let mut properties = shared.engine.read_properties(ty);
    // The custom properties the record has locally; HubSpot returns only what is asked for.
    for key in record.fields.keys() {
        if let Some(custom) = key.strip_prefix(CUSTOM_PREFIX) {
            properties.push(custom.to_owned());
        }
    }
    let api = client(shared, caller.portal)?;
    let object = api
        .get(ty, &ObjectKey::Id(hubspot_id), &properties, false)
        .await?;
    let mut results = unified(shared, caller.portal, ty, vec![object]).await?;
    let body = results
        .pop()
        .ok_or_else(|| ApiError::internal(&"the mapping dropped the record"))?;
    Ok(Json(body).into_response())
}

/// HubSpot objects in the unified shape, joined with the mirror's copies (one query).
async fn unified(
    shared: &Shared,
    portal: PortalId,
    ty: ObjectType,
    objects: Vec<HubspotObject>,
) -> Result<Vec<Value>, ApiError> {
    if objects.is_empty() {
        return Ok(Vec::new());
    }
    let store = shared.engine.store.as_ref();
    let ids: Vec<Value> = objects
        .iter()
        .map(|o| Value::String(o.id.to_string()))
        .collect();
    let limit = u32::try_from(objects.len()).unwrap_or(u32::MAX);
    let local = store
        .list_records(
            portal,
            ty,
            None,
            limit,
            &[
                Filter::new("hubspot_id", FilterOp::In, Value::Array(ids)),
                Filter::new("deleted_at", FilterOp::IsNull, Value::Null),
            ],
        )
        .await?;
    let views = records::sync_views(store, &shared.engine.mappings, portal, ty, &local).await?;
    let mirror: HashMap<HubspotId, (&LocalRecord, &SyncView)> = local
        .iter()
        .zip(&views)
        .filter_map(|(r, v)| r.hubspot_id.map(|id| (id, (r, v))))
        .collect();

    let inputs: Vec<Value> = objects
        .iter()
        .map(|o| json!({"id": o.id.to_string(), "properties": o.properties}))
        .collect();
    let mapped = shared.engine.mappings.to_unified_batch(ty, inputs).await?;
    let mut out = Vec::with_capacity(objects.len());
    for (object, fields) in objects.iter().zip(mapped) {
        let fields: FieldMap = match fields {
            Ok(fields) => fields,
            Err(e) => {
                tracing::warn!(%portal, object_type = %ty, hubspot_id = %object.id, error = %e,
                    "remote record cannot be mapped; left out of the answer");
                continue;
            }
        };
        let mut record = match fields.to_unified() {
            Value::Object(map) => map,
            _ => Map::new(),
        };
        let (id, sync) = match mirror.get(&object.id) {
            Some((r, v)) => (Value::String(r.local_id.to_string()), v.to_json()),
            None => (
                Value::Null,
                SyncView {
                    status: SyncStatus::Pending,
                    synced_at: None,
                    reason: None,
                    category: None,
                }
                .to_json(),
            ),
        };
        record.insert("id".into(), id);
        record.insert("hubspot_id".into(), Value::String(object.id.to_string()));
        record.insert(
            "created_at".into(),
            Value::String(records::rfc3339(millis(object.created_at))),
        );
        record.insert(
            "updated_at".into(),
            Value::String(records::rfc3339(millis(object.updated_at))),
        );
        record.insert("sync".into(), sync);
        out.push(Value::Object(record));
    }
    Ok(out)
}

fn millis(t: time::OffsetDateTime) -> i64 {
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}
