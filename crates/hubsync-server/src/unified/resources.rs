//! The record handlers: list, get, create, update, delete on the local mirror (or, for reads
//! with `?source=remote`, through to HubSpot), and writes that wait for HubSpot.
//!
//! Writes are app writes: they go through the store like the app's own SQL and are captured
//! into the outbox, from where the outbound worker pushes them. Input is validated first
//! (field names, values in canonical form by the mapping), so a bad body is a 400 naming the
//! field, never a dead letter.

use std::sync::Arc;

use axum::Extension;
use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use hubsync_core::record::CUSTOM_PREFIX;
use hubsync_core::{Changes, FieldMap, LocalId, ObjectType, PortalId};
use hubsync_mapping::SqlOp;
use hubsync_store::{Filter, FilterOp, LocalRecord};
use serde_json::{Map, Value};

use super::auth::{Caller, PORTAL_PARAM};
use super::cursor::Cursor;
use super::error::ApiError;
use super::records::{self, SyncStatus, SyncView};
use super::{Shared, object_type, query_pairs, remote};

/// Page size when the caller names none.
pub const DEFAULT_LIMIT: u32 = 50;
/// The largest page.
pub const MAX_LIMIT: u32 = 100;

/// Members of a record that the API maintains; a body may not set them.
const READ_ONLY: [&str; 7] = [
    "id",
    "hubspot_id",
    "created_at",
    "updated_at",
    "deleted_at",
    "deleted",
    "sync",
];

/// Where a read is served from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The local mirror (no HubSpot budget spent).
    Local,
    /// HubSpot, through the portal's interactive budget.
    Remote,
}

/// The parsed query of a listing.
#[derive(Debug)]
pub struct ListQuery {
    /// Page size.
    pub limit: u32,
    /// Where the page starts.
    pub cursor: Option<Cursor>,
    /// Where to read from.
    pub source: Source,
    /// The remaining parameters: filters.
    pub filters: Vec<(String, String)>,
}

fn one_value(seen: &mut Vec<&'static str>, name: &'static str) -> Result<(), ApiError> {
    if seen.contains(&name) {
        return Err(ApiError::bad_request(
            "duplicate_parameter",
            format!("the `{name}` parameter is given more than once"),
        )
        .field(name));
    }
    seen.push(name);
    Ok(())
}

fn parse_source(value: &str) -> Result<Source, ApiError> {
    match value {
        "local" => Ok(Source::Local),
        "remote" => Ok(Source::Remote),
        _ => Err(ApiError::bad_request(
            "invalid_value",
            format!("`source` must be `local` or `remote`, not `{value}`"),
        )
        .field("source")),
    }
}

impl ListQuery {
    /// Splits the API's own parameters from the filters.
    pub fn parse(pairs: Vec<(String, String)>) -> Result<ListQuery, ApiError> {
        let mut query = ListQuery {
            limit: DEFAULT_LIMIT,
            cursor: None,
            source: Source::Local,
            filters: Vec::new(),
        };
        let mut seen = Vec::new();
        for (key, value) in pairs {
            match key.as_str() {
                "limit" => {
                    one_value(&mut seen, "limit")?;
                    let limit: u32 = value.trim().parse().map_err(|_| {
                        ApiError::bad_request(
                            "invalid_value",
                            format!("`limit` must be an integer from 1 to {MAX_LIMIT}"),
                        )
                        .field("limit")
                    })?;
                    if limit == 0 || limit > MAX_LIMIT {
                        return Err(ApiError::bad_request(
                            "limit_out_of_range",
                            format!("`limit` must be from 1 to {MAX_LIMIT}, not {limit}"),
                        )
                        .field("limit"));
                    }
                    query.limit = limit;
                }
                "cursor" => {
                    one_value(&mut seen, "cursor")?;
                    if !value.is_empty() {
                        query.cursor = Some(Cursor::decode(&value)?);
                    }
                }
                "source" => {
                    one_value(&mut seen, "source")?;
                    query.source = parse_source(&value)?;
                }
                PORTAL_PARAM => {}
                _ => query.filters.push((key, value)),
            }
        }
        Ok(query)
    }
}

/// The parameters of a single-record read or a write: `source`, `wait`, `portal_id`.
#[derive(Debug, Clone, Copy)]
struct RecordQuery {
    source: Source,
    wait: bool,
}

fn record_query(uri: &Uri, allow_source: bool, allow_wait: bool) -> Result<RecordQuery, ApiError> {
    let mut out = RecordQuery {
        source: Source::Local,
        wait: false,
    };
    let mut seen = Vec::new();
    for (key, value) in query_pairs(uri)? {
        match key.as_str() {
            "source" if allow_source => {
                one_value(&mut seen, "source")?;
                out.source = parse_source(&value)?;
            }
            "wait" if allow_wait => {
                one_value(&mut seen, "wait")?;
                if value != "synced" {
                    return Err(ApiError::bad_request(
                        "invalid_value",
                        format!("`wait` must be `synced`, not `{value}`"),
                    )
                    .field("wait"));
                }
                out.wait = true;
            }
            PORTAL_PARAM => {}
            other => {
                return Err(ApiError::bad_request(
                    "unknown_parameter",
                    format!("unknown query parameter `{other}`"),
                )
                .field(other));
            }
        }
    }
    Ok(out)
}

/// A record id from the path; anything that is not one of ours is simply not found.
fn local_id(text: &str) -> Result<LocalId, ApiError> {
    text.parse()
        .map_err(|_| ApiError::not_found(format!("no record `{text}`")))
}

fn store_op(op: SqlOp) -> FilterOp {
    match op {
        SqlOp::Eq => FilterOp::Eq,
        SqlOp::Neq => FilterOp::Neq,
        SqlOp::Lt => FilterOp::Lt,
        SqlOp::Lte => FilterOp::Lte,
        SqlOp::Gt => FilterOp::Gt,
        SqlOp::Gte => FilterOp::Gte,
        SqlOp::In => FilterOp::In,
        SqlOp::Contains => FilterOp::Contains,
        SqlOp::IsNull => FilterOp::IsNull,
        SqlOp::NotNull => FilterOp::NotNull,
    }
}

/// The live (not deleted) record with this id, or 404.
async fn live_record(
    shared: &Shared,
    portal: PortalId,
    ty: ObjectType,
    id: LocalId,
) -> Result<LocalRecord, ApiError> {
    match shared.engine.store.get_record(portal, ty, id).await? {
        Some(record) if !record.deleted => Ok(record),
        _ => Err(ApiError::not_found(format!("no {} `{id}`", ty.singular()))),
    }
}

/// A record with its sync status, in the unified shape.
async fn rendered(
    shared: &Shared,
    portal: PortalId,
    ty: ObjectType,
    record: &LocalRecord,
) -> Result<Value, ApiError> {
    let views = records::sync_views(
        shared.engine.store.as_ref(),
        &shared.engine.mappings,
        portal,
        ty,
        std::slice::from_ref(record),
    )
    .await?;
    let view = views.into_iter().next().unwrap_or(SyncView {
        status: SyncStatus::Pending,
        synced_at: None,
        reason: None,
        category: None,
    });
    Ok(records::render(record, &view))
}

/// `GET /unified/crm/{type}`.
pub async fn list(
    State(shared): State<Arc<Shared>>,
    Extension(caller): Extension<Caller>,
    Path(resource): Path<String>,
    uri: Uri,
) -> Result<Response, ApiError> {
    let ty = object_type(&resource)?;
    let query = ListQuery::parse(query_pairs(&uri)?)?;
    if query.source == Source::Remote {
        return remote::list(&shared, caller, ty, query).await;
    }
    let rules = shared.engine.mappings.filter_rules(ty);
    let filters = rules.parse(query.filters.iter().map(|(k, v)| (k, v)))?;
    let mut store_filters: Vec<Filter> = rules
        .to_sql_filters(&filters)
        .into_iter()
        .map(|f| Filter::new(f.field, store_op(f.op), f.value))
        .collect();
    store_filters.push(Filter::new("deleted_at", FilterOp::IsNull, Value::Null));
    let after = match query.cursor {
        None => None,
        Some(Cursor::Local(id)) => Some(id),
        Some(Cursor::Remote(_)) => {
            return Err(ApiError::bad_request(
                "bad_cursor",
                "this cursor belongs to a remote listing; pass `source=remote` with it",
            )
            .field("cursor"));
        }
    };
    let store = shared.engine.store.as_ref();
    let mut page = store
        .list_records(caller.portal, ty, after, query.limit + 1, &store_filters)
        .await?;
    let more = page.len() > query.limit as usize;
    page.truncate(query.limit as usize);
    let next_cursor = page
        .last()
        .filter(|_| more)
        .map(|r| Cursor::Local(r.local_id).encode());
    let views =
        records::sync_views(store, &shared.engine.mappings, caller.portal, ty, &page).await?;
    /// The page, serialised straight from the records.
    #[derive(serde::Serialize)]
    struct Page<'a> {
        results: Vec<records::Unified<'a>>,
        next_cursor: Option<String>,
    }
    let results = page
        .iter()
        .zip(&views)
        .map(|(record, sync)| records::Unified { record, sync })
        .collect();
    Ok(Json(Page {
        results,
        next_cursor,
    })
    .into_response())
}

/// `GET /unified/crm/{type}/{id}`.
pub async fn get_one(
    State(shared): State<Arc<Shared>>,
    Extension(caller): Extension<Caller>,
    Path((resource, id)): Path<(String, String)>,
    uri: Uri,
) -> Result<Response, ApiError> {
    let ty = object_type(&resource)?;
    let query = record_query(&uri, true, false)?;
    let id = local_id(&id)?;
    let record = live_record(&shared, caller.portal, ty, id).await?;
    if query.source == Source::Remote {
        return remote::get(&shared, caller, ty, &record).await;
    }
    Ok(Json(rendered(&shared, caller.portal, ty, &record).await?).into_response())
}

/// `POST /unified/crm/{type}`.
pub async fn create(
    State(shared): State<Arc<Shared>>,
    Extension(caller): Extension<Caller>,
    Path(resource): Path<String>,
    uri: Uri,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let ty = object_type(&resource)?;
    let query = record_query(&uri, false, true)?;
    let changes = validated_changes(&shared, ty, &body_object(body)?)?;
    let fields: FieldMap = changes.into_iter().collect();
    let record = shared
        .engine
        .store
        .insert_record(caller.portal, ty, &fields)
        .await?;
    tracing::info!(portal = %caller.portal, object_type = %ty, local_id = record.local_id.get(),
        key_id = caller.key_id, "unified api created a record");
    answer(
        &shared,
        caller.portal,
        ty,
        record,
        query.wait,
        StatusCode::CREATED,
    )
    .await
}

/// `PATCH /unified/crm/{type}/{id}`.
pub async fn update(
    State(shared): State<Arc<Shared>>,
    Extension(caller): Extension<Caller>,
    Path((resource, id)): Path<(String, String)>,
    uri: Uri,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let ty = object_type(&resource)?;
    let query = record_query(&uri, false, true)?;
    let id = local_id(&id)?;
    let changes = validated_changes(&shared, ty, &body_object(body)?)?;
    let current = live_record(&shared, caller.portal, ty, id).await?;
    let record = if changes.is_empty() {
        current
    } else {
        shared
            .engine
            .store
            .update_record(caller.portal, ty, id, &changes)
            .await?
            .ok_or_else(|| ApiError::not_found(format!("no {} `{id}`", ty.singular())))?
    };
    tracing::info!(portal = %caller.portal, object_type = %ty, local_id = id.get(),
        key_id = caller.key_id, fields = changes.len(), "unified api updated a record");
    answer(
        &shared,
        caller.portal,
        ty,
        record,
        query.wait,
        StatusCode::OK,
    )
    .await
}

/// `DELETE /unified/crm/{type}/{id}`.
pub async fn remove(
    State(shared): State<Arc<Shared>>,
    Extension(caller): Extension<Caller>,
    Path((resource, id)): Path<(String, String)>,
    uri: Uri,
) -> Result<Response, ApiError> {
    let ty = object_type(&resource)?;
    let query = record_query(&uri, false, true)?;
    let id = local_id(&id)?;
    let store = shared.engine.store.as_ref();
    if !store.delete_record(caller.portal, ty, id).await? {
        return Err(ApiError::not_found(format!("no {} `{id}`", ty.singular())));
    }
    tracing::info!(portal = %caller.portal, object_type = %ty, local_id = id.get(),
        key_id = caller.key_id, "unified api deleted a record");
    let record = store
        .get_record(caller.portal, ty, id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no {} `{id}`", ty.singular())))?;
    answer(
        &shared,
        caller.portal,
        ty,
        record,
        query.wait,
        StatusCode::OK,
    )
    .await
}

/// The answer to a write: the record and its sync status, after waiting for HubSpot when
/// asked to. A write HubSpot refused is a 422 `sync_failed` with HubSpot's reason and the
/// record; a wait that runs out is a 202 with the record still pending.
async fn answer(
    shared: &Shared,
    portal: PortalId,
    ty: ObjectType,
    record: LocalRecord,
    wait: bool,
    status: StatusCode,
) -> Result<Response, ApiError> {
    if !wait {
        let body = rendered(shared, portal, ty, &record).await?;
        return Ok((status, Json(body)).into_response());
    }
    let deadline = tokio::time::Instant::now() + shared.config.wait_timeout;
    let store = shared.engine.store.as_ref();
    let mut record = record;
    loop {
        let views = records::sync_views(
            store,
            &shared.engine.mappings,
            portal,
            ty,
            std::slice::from_ref(&record),
        )
        .await?;
        let Some(view) = views.into_iter().next() else {
            return Err(ApiError::internal(&"no sync view for a record"));
        };
        match view.status {
            SyncStatus::Synced => {
                // The acknowledgement may have landed between reading the row and its sync
                // state: read the row again for the HubSpot id it wrote.
                if let Some(fresh) = store.get_record(portal, ty, record.local_id).await? {
                    record = fresh;
                }
                return Ok((status, Json(records::render(&record, &view))).into_response());
            }
            SyncStatus::Failed => {
                let reason = view.reason.clone().unwrap_or_default();
                let mut err = ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "sync_failed",
                    format!("HubSpot did not accept the write: {reason}"),
                );
                err.details_mut().extra = Some(("record", records::render(&record, &view)));
                return Err(err);
            }
            SyncStatus::Pending if tokio::time::Instant::now() >= deadline => {
                return Ok(
                    (StatusCode::ACCEPTED, Json(records::render(&record, &view))).into_response(),
                );
            }
            SyncStatus::Pending => {}
        }
        tokio::time::sleep(shared.config.wait_poll).await;
        record = match store.get_record(portal, ty, record.local_id).await? {
            Some(r) => r,
            None => return Err(ApiError::not_found("the record is gone")),
        };
    }
}

/// The body of a write: a JSON object, or a 4xx saying why not.
fn body_object(body: Result<Bytes, BytesRejection>) -> Result<Map<String, Value>, ApiError> {
    let bytes = body.map_err(|e| {
        let code = if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            "payload_too_large"
        } else {
            "invalid_body"
        };
        ApiError::new(e.status(), code, format!("cannot read the body: {e}"))
    })?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad_request(
            "malformed_json",
            "the body is empty; send a JSON object",
        ));
    }
    match serde_json::from_slice::<Value>(&bytes) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(ApiError::bad_request(
            "invalid_body",
            "the body must be a JSON object of fields",
        )),
        Err(e) => Err(ApiError::bad_request(
            "malformed_json",
            format!("the body is not valid JSON: {e}"),
        )),
    }
}

/// A body's fields as validated changes in canonical form (`null` clears a field).
fn validated_changes(
    shared: &Shared,
    ty: ObjectType,
    body: &Map<String, Value>,
) -> Result<Changes, ApiError> {
    let mut flat: Vec<(String, Value)> = Vec::with_capacity(body.len());
    for (key, value) in body {
        if READ_ONLY.contains(&key.as_str()) {
            return Err(ApiError::bad_request(
                "read_only_field",
                format!("`{key}` is maintained by hubsync and cannot be written"),
            )
            .field(key.clone()));
        }
        if key == "custom_fields" {
            let custom = value.as_object().ok_or_else(|| {
                ApiError::bad_request(
                    "invalid_value",
                    "`custom_fields` must be an object of property names to values",
                )
                .field("custom_fields")
            })?;
            for (name, v) in custom {
                flat.push((format!("{CUSTOM_PREFIX}{name}"), v.clone()));
            }
        } else {
            flat.push((key.clone(), value.clone()));
        }
    }
    // Names first (values are checked in canonical form below).
    for (name, _) in &flat {
        hubsync_store::check_fields(ty, [(name.as_str(), &Value::Null)])?;
    }
    let values: FieldMap = flat
        .iter()
        .filter(|(_, v)| !v.is_null())
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let canonical = shared.engine.mappings.normalize(ty, &values)?;
    hubsync_store::check_fields(ty, canonical.iter())?;
    let mut changes: Changes = canonical
        .iter()
        .map(|(k, v)| (k.to_owned(), v.clone()))
        .collect();
    for (name, value) in flat {
        // A value that canonicalises to nothing (an empty list) clears the field too.
        if value.is_null() || !changes.contains_key(&name) {
            changes.insert(name, Value::Null);
        }
    }
    Ok(changes)
}
