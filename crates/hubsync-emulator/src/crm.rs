//! CRM endpoints: v3 objects (list, get, create, update, archive, batch, search, merge,
//! GDPR delete), v3 properties and v4 associations.

use std::collections::BTreeMap;

use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::api::{Req, json_resp};
use crate::error::ApiError;
use crate::model::{ObjectKind, PropOption, PropType, PropertyDef, iso, now_ms};
use crate::portal::{Actor, ChangeEvent, PortalData, PropSelection, WriteCtx, Writes};
use crate::search::SearchRequest;
use crate::state::{Portal, Shared, TokenInfo};
use crate::store::{assoc_type, default_assoc};
use crate::webhooks;

/// A recognised CRM route.
#[derive(Debug, Clone)]
pub enum Route {
    /// `GET /crm/v3/objects/{t}`.
    List(ObjectKind),
    /// `POST /crm/v3/objects/{t}`.
    Create(ObjectKind),
    /// `GET /crm/v3/objects/{t}/{id}`.
    Get(ObjectKind, String),
    /// `PATCH /crm/v3/objects/{t}/{id}`.
    Update(ObjectKind, String),
    /// `DELETE /crm/v3/objects/{t}/{id}`.
    Archive(ObjectKind, String),
    /// `POST /crm/v3/objects/{t}/batch/{op}`.
    Batch(ObjectKind, BatchOp),
    /// `POST /crm/v3/objects/{t}/search`.
    Search(ObjectKind),
    /// `POST /crm/v3/objects/{t}/merge`.
    Merge(ObjectKind),
    /// `POST /crm/v3/objects/contacts/gdpr-delete`.
    GdprDelete,
    /// `GET /crm/v3/properties/{t}`.
    PropList(ObjectKind),
    /// `POST /crm/v3/properties/{t}`.
    PropCreate(ObjectKind),
    /// `GET /crm/v3/properties/{t}/{name}`.
    PropGet(ObjectKind, String),
    /// `PATCH /crm/v3/properties/{t}/{name}`.
    PropUpdate(ObjectKind, String),
    /// `DELETE /crm/v3/properties/{t}/{name}`.
    PropArchive(ObjectKind, String),
    /// `POST /crm/v3/properties/{t}/batch/read`.
    PropBatchRead(ObjectKind),
    /// `PUT /crm/v4/objects/{f}/{id}/associations/default/{t}/{id}`.
    AssocDefault(ObjectKind, String, ObjectKind, String),
    /// `PUT /crm/v4/objects/{f}/{id}/associations/{t}/{id}`.
    AssocLabels(ObjectKind, String, ObjectKind, String),
    /// `DELETE /crm/v4/objects/{f}/{id}/associations/{t}/{id}`.
    AssocDelete(ObjectKind, String, ObjectKind, String),
    /// `GET /crm/v4/objects/{f}/{id}/associations/{t}`.
    AssocList(ObjectKind, String, ObjectKind),
    /// `POST /crm/v4/associations/{f}/{t}/batch/{op}`.
    AssocBatch(ObjectKind, ObjectKind, AssocBatchOp),
}

/// Object batch operations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchOp {
    /// read
    Read,
    /// create
    Create,
    /// update
    Update,
    /// upsert
    Upsert,
    /// archive
    Archive,
}

/// Association batch operations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AssocBatchOp {
    /// read
    Read,
    /// create
    Create,
    /// associate/default
    Default,
    /// archive
    Archive,
}

impl Route {
    /// Whether this is a search call.
    pub fn is_search(&self) -> bool {
        matches!(self, Route::Search(_))
    }

    /// Operation name for stats (`contacts.batch_update`).
    pub fn operation(&self) -> String {
        match self {
            Route::List(k) => format!("{k}.list"),
            Route::Create(k) => format!("{k}.create"),
            Route::Get(k, _) => format!("{k}.get"),
            Route::Update(k, _) => format!("{k}.update"),
            Route::Archive(k, _) => format!("{k}.archive"),
            Route::Batch(k, op) => format!("{k}.batch_{}", format!("{op:?}").to_lowercase()),
            Route::Search(k) => format!("{k}.search"),
            Route::Merge(k) => format!("{k}.merge"),
            Route::GdprDelete => "contacts.gdpr_delete".to_owned(),
            Route::PropList(k) | Route::PropGet(k, _) | Route::PropBatchRead(k) => {
                format!("properties.{k}.read")
            }
            Route::PropCreate(k) | Route::PropUpdate(k, _) | Route::PropArchive(k, _) => {
                format!("properties.{k}.write")
            }
            Route::AssocDefault(..) | Route::AssocLabels(..) | Route::AssocDelete(..) => {
                "associations.write".to_owned()
            }
            Route::AssocList(..) => "associations.read".to_owned(),
            Route::AssocBatch(_, _, op) => {
                format!("associations.batch_{}", format!("{op:?}").to_lowercase())
            }
        }
    }
}

fn kind(s: &str) -> Result<ObjectKind, ApiError> {
    ObjectKind::parse(s)
        .ok_or_else(|| ApiError::validation(format!("Unable to infer object type from: {s}")))
}

/// Matches a request to a route.
pub fn route(req: &Req) -> Result<Route, ApiError> {
    let s: Vec<&str> = req.segs.iter().map(String::as_str).collect();
    let m = &req.method;
    let nf = || ApiError::route_not_found(m.as_str(), &format!("/{}", s.join("/")));
    let r = match s.as_slice() {
        ["crm", "v3", "objects", t] if m == Method::GET => Route::List(kind(t)?),
        ["crm", "v3", "objects", t] if m == Method::POST => Route::Create(kind(t)?),
        ["crm", "v3", "objects", t, "search"] if m == Method::POST => Route::Search(kind(t)?),
        ["crm", "v3", "objects", t, "merge"] if m == Method::POST => Route::Merge(kind(t)?),
        ["crm", "v3", "objects", t, "gdpr-delete"] if m == Method::POST => {
            if kind(t)? != ObjectKind::Contact {
                return Err(nf());
            }
            Route::GdprDelete
        }
        ["crm", "v3", "objects", t, "batch", op] if m == Method::POST => {
            let op = match *op {
                "read" => BatchOp::Read,
                "create" => BatchOp::Create,
                "update" => BatchOp::Update,
                "upsert" => BatchOp::Upsert,
                "archive" => BatchOp::Archive,
                _ => return Err(nf()),
            };
            Route::Batch(kind(t)?, op)
        }
        ["crm", "v3", "objects", t, id] => match *m {
            Method::GET => Route::Get(kind(t)?, (*id).to_owned()),
            Method::PATCH => Route::Update(kind(t)?, (*id).to_owned()),
            Method::DELETE => Route::Archive(kind(t)?, (*id).to_owned()),
            _ => return Err(nf()),
        },
        ["crm", "v3", "properties", t] if m == Method::GET => Route::PropList(kind(t)?),
        ["crm", "v3", "properties", t] if m == Method::POST => Route::PropCreate(kind(t)?),
        ["crm", "v3", "properties", t, "batch", "read"] if m == Method::POST => {
            Route::PropBatchRead(kind(t)?)
        }
        ["crm", "v3", "properties", t, name] => match *m {
            Method::GET => Route::PropGet(kind(t)?, (*name).to_owned()),
            Method::PATCH => Route::PropUpdate(kind(t)?, (*name).to_owned()),
            Method::DELETE => Route::PropArchive(kind(t)?, (*name).to_owned()),
            _ => return Err(nf()),
        },
        [
            "crm",
            "v4",
            "objects",
            f,
            fid,
            "associations",
            "default",
            t,
            tid,
        ] if m == Method::PUT => {
            Route::AssocDefault(kind(f)?, (*fid).to_owned(), kind(t)?, (*tid).to_owned())
        }
        ["crm", "v4", "objects", f, fid, "associations", t, tid] => match *m {
            Method::PUT => {
                Route::AssocLabels(kind(f)?, (*fid).to_owned(), kind(t)?, (*tid).to_owned())
            }
            Method::DELETE => {
                Route::AssocDelete(kind(f)?, (*fid).to_owned(), kind(t)?, (*tid).to_owned())
            }
            _ => return Err(nf()),
        },
        ["crm", "v4", "objects", f, fid, "associations", t] if m == Method::GET => {
            Route::AssocList(kind(f)?, (*fid).to_owned(), kind(t)?)
        }
        ["crm", "v4", "associations", f, t, "batch", rest @ ..] if m == Method::POST => {
            let op = match rest {
                ["read"] => AssocBatchOp::Read,
                ["create"] => AssocBatchOp::Create,
                ["associate", "default"] => AssocBatchOp::Default,
                ["archive"] => AssocBatchOp::Archive,
                _ => return Err(nf()),
            };
            Route::AssocBatch(kind(f)?, kind(t)?, op)
        }
        _ => return Err(nf()),
    };
    Ok(r)
}

/// Per-request context.
struct Ctx<'a> {
    sh: &'a Shared,
    portal: &'a Portal,
    auth: &'a TokenInfo,
}

impl Ctx<'_> {
    fn write_ctx(&self) -> WriteCtx {
        WriteCtx::from_settings(&self.sh.settings.read(), Actor::App(self.auth.app))
    }

    fn emit(&self, events: Vec<ChangeEvent>) {
        webhooks::emit(self.sh, self.portal, events);
    }
}

/// Executes a routed request.
pub fn execute(
    sh: &Shared,
    portal: &Portal,
    auth: &TokenInfo,
    route: Route,
    req: &Req,
) -> Result<Response, ApiError> {
    let cx = Ctx { sh, portal, auth };
    match route {
        Route::List(k) => list(&cx, k, req),
        Route::Get(k, id) => get(&cx, k, &id, req),
        Route::Create(k) => create(&cx, k, req),
        Route::Update(k, id) => update(&cx, k, &id, req),
        Route::Archive(k, id) => archive(&cx, k, &id),
        Route::Batch(k, op) => batch(&cx, k, op, req),
        Route::Search(k) => search(&cx, k, req),
        Route::Merge(k) => merge(&cx, k, req),
        Route::GdprDelete => gdpr_delete(&cx, req),
        Route::PropList(k) => prop_list(&cx, k, req),
        Route::PropGet(k, n) => prop_get(&cx, k, &n),
        Route::PropCreate(k) => prop_create(&cx, k, req),
        Route::PropUpdate(k, n) => prop_update(&cx, k, &n, req),
        Route::PropArchive(k, n) => prop_archive(&cx, k, &n),
        Route::PropBatchRead(k) => prop_batch_read(&cx, k, req),
        Route::AssocDefault(f, fid, t, tid) => assoc_put(&cx, f, &fid, t, &tid, None),
        Route::AssocLabels(f, fid, t, tid) => {
            let types: Vec<AssocSpecIn> = req.parse()?;
            assoc_put(&cx, f, &fid, t, &tid, Some(types))
        }
        Route::AssocDelete(f, fid, t, tid) => assoc_delete(&cx, f, &fid, t, &tid),
        Route::AssocList(f, fid, t) => assoc_list(&cx, f, &fid, t, req),
        Route::AssocBatch(f, t, op) => assoc_batch(&cx, f, t, op, req),
    }
}

fn parse_limit(
    req: &Req,
    default: usize,
    max: usize,
    reject_over: bool,
) -> Result<usize, ApiError> {
    match req.q("limit") {
        None => Ok(default),
        Some(v) => {
            let n: usize = v
                .trim()
                .parse()
                .map_err(|_| ApiError::validation(format!("limit must be an integer, got {v}")))?;
            if n > max && reject_over {
                return Err(ApiError::validation(format!(
                    "limit must be less than or equal to {max}"
                )));
            }
            Ok(n.clamp(1, max))
        }
    }
}

fn v3_associations(
    data: &PortalData,
    kind: ObjectKind,
    id: u64,
    wanted: &[String],
) -> Option<Value> {
    let mut out = Map::new();
    for w in wanted {
        let Some(to) = ObjectKind::parse(w) else {
            continue;
        };
        let mut results = Vec::new();
        for (tid, types) in data.assoc.list((kind, id), to) {
            for t in types.iter().filter_map(|t| assoc_type(*t)) {
                results.push(json!({"id": tid.to_string(), "type": t.v3_name}));
            }
        }
        if !results.is_empty() {
            out.insert(to.plural().to_owned(), json!({"results": results}));
        }
    }
    (!out.is_empty()).then_some(Value::Object(out))
}

fn list(cx: &Ctx<'_>, k: ObjectKind, req: &Req) -> Result<Response, ApiError> {
    let reject = cx.sh.settings.read().reject_list_limit_over_100;
    let limit = parse_limit(req, 10, 100, reject)?;
    let after: u64 = match req.q("after") {
        None | Some("") => 0,
        Some(a) => a
            .trim()
            .parse()
            .map_err(|_| ApiError::validation(format!("after must be a valid cursor, got {a}")))?,
    };
    let archived = req.q_bool("archived");
    let sel = PropSelection::from_list(req.q_list("properties"));
    let assoc = req.q_list("associations");
    let data = cx.portal.data.read();
    let store = data.store(k);
    let map = if archived {
        &store.archived
    } else {
        &store.live
    };
    let mut results = Vec::with_capacity(limit);
    let mut next = None;
    for (id, rec) in map.range(after..) {
        if results.len() == limit {
            next = Some(*id);
            break;
        }
        let mut o = data.render(k, *id, rec, &sel);
        if let Some(a) = v3_associations(&data, k, *id, &assoc) {
            o["associations"] = a;
        }
        results.push(o);
    }
    let mut body = json!({"results": results});
    if let Some(n) = next {
        body["paging"] = json!({"next": {
            "after": n.to_string(),
            "link": format!("https://api.hubapi.com/crm/v3/objects/{}?limit={limit}&after={n}", k.plural()),
        }});
    }
    Ok(json_resp(StatusCode::OK, body))
}

fn get(cx: &Ctx<'_>, k: ObjectKind, id: &str, req: &Req) -> Result<Response, ApiError> {
    let id_prop = req.q("idProperty");
    let data = cx.portal.data.read();
    if let Some(p) = id_prop {
        data.check_id_property(k, p)?;
    }
    let sel = PropSelection::from_list(req.q_list("properties"));
    let store = data.store(k);
    let found = if req.q_bool("archived") {
        id.trim()
            .parse::<u64>()
            .ok()
            .filter(|i| store.archived.contains_key(i))
            .and_then(|i| store.archived.get(&i).map(|r| (i, r)))
    } else {
        data.lookup(k, id, id_prop)
            .and_then(|i| store.live.get(&i).map(|r| (i, r)))
    };
    let Some((rid, rec)) = found else {
        return Err(ApiError::object_not_found(id));
    };
    let mut o = data.render(k, rid, rec, &sel);
    if let Some(a) = v3_associations(&data, k, rid, &req.q_list("associations")) {
        o["associations"] = a;
    }
    Ok(json_resp(StatusCode::OK, o))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct CreateIn {
    #[serde(default)]
    properties: Map<String, Value>,
    #[serde(default)]
    associations: Vec<AssocIn>,
    #[serde(default)]
    object_write_trace_id: Option<String>,
}

#[derive(Debug, Deserialize)]
struct AssocIn {
    to: IdIn,
    #[serde(default)]
    types: Vec<AssocSpecIn>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct AssocSpecIn {
    #[serde(default)]
    association_category: Option<String>,
    association_type_id: u32,
}

#[derive(Debug, Deserialize)]
struct IdIn {
    #[serde(deserialize_with = "de_id")]
    id: String,
}

fn de_id<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let v = Value::deserialize(d)?;
    match v {
        Value::String(s) => Ok(s),
        Value::Number(n) => Ok(n.to_string()),
        other => Err(serde::de::Error::custom(format!(
            "expected an id, got {other}"
        ))),
    }
}

fn written_names(data: &PortalData, k: ObjectKind, w: &Writes) -> Vec<String> {
    w.iter()
        .map(|(i, _)| data.reg(k).def(*i).name.clone())
        .collect()
}

/// Creates one record with v3 associations; returns its id.
fn create_one(
    data: &mut PortalData,
    k: ObjectKind,
    input: &CreateIn,
    wc: &WriteCtx,
    events: &mut Vec<ChangeEvent>,
) -> Result<(u64, Vec<String>), ApiError> {
    let writes = data.prepare(k, &input.properties)?;
    // Validate associations before writing.
    let mut links = Vec::new();
    for a in &input.associations {
        let to_id: u64 = a.to.id.trim().parse().map_err(|_| {
            ApiError::validation(format!("invalid association target id {}", a.to.id))
        })?;
        for t in &a.types {
            let ty = assoc_type(t.association_type_id)
                .filter(|ty| ty.from == k)
                .ok_or_else(|| {
                    ApiError::validation(format!(
                        "association type id {} is not valid for {}",
                        t.association_type_id,
                        k.upper()
                    ))
                })?;
            let _ = &t.association_category;
            if !data.store(ty.to).live.contains_key(&to_id) {
                return Err(ApiError::validation(format!(
                    "{} {to_id} does not exist",
                    ty.to.upper()
                )));
            }
            links.push((ty.to, to_id, ty.id));
        }
    }
    let names = written_names(data, k, &writes);
    let id = data.create(k, writes, wc, events)?;
    for (to, to_id, ty) in links {
        data.associate((k, id), (to, to_id), ty, wc, events)?;
    }
    Ok((id, names))
}

fn create(cx: &Ctx<'_>, k: ObjectKind, req: &Req) -> Result<Response, ApiError> {
    let input: CreateIn = req.parse()?;
    let wc = cx.write_ctx();
    let mut events = Vec::new();
    let body = {
        let mut data = cx.portal.data.write();
        let (id, names) = create_one(&mut data, k, &input, &wc, &mut events)?;
        let store = data.store(k);
        let rec = store
            .live
            .get(&id)
            .ok_or_else(|| ApiError::object_not_found(&id.to_string()))?;
        data.render(k, id, rec, &PropSelection::DefaultPlus(names))
    };
    cx.emit(events);
    Ok(json_resp(StatusCode::CREATED, body))
}

#[derive(Debug, Deserialize)]
struct UpdateIn {
    #[serde(default)]
    properties: Map<String, Value>,
}

fn update(cx: &Ctx<'_>, k: ObjectKind, id: &str, req: &Req) -> Result<Response, ApiError> {
    let input: UpdateIn = req.parse()?;
    let wc = cx.write_ctx();
    let mut events = Vec::new();
    let body = {
        let mut data = cx.portal.data.write();
        let id_prop = req.q("idProperty");
        if let Some(p) = id_prop {
            data.check_id_property(k, p)?;
        }
        let rid = data
            .lookup(k, id, id_prop)
            .ok_or_else(|| ApiError::object_not_found(id))?;
        let writes = data.prepare(k, &input.properties)?;
        let names = written_names(&data, k, &writes);
        data.update(k, rid, &writes, &wc, &mut events)?;
        let rec = data
            .store(k)
            .live
            .get(&rid)
            .ok_or_else(|| ApiError::object_not_found(id))?;
        data.render(k, rid, rec, &PropSelection::DefaultPlus(names))
    };
    cx.emit(events);
    Ok(json_resp(StatusCode::OK, body))
}

fn archive(cx: &Ctx<'_>, k: ObjectKind, id: &str) -> Result<Response, ApiError> {
    let wc = cx.write_ctx();
    let mut events = Vec::new();
    let found = {
        let mut data = cx.portal.data.write();
        match data.lookup(k, id, None) {
            Some(rid) => data.archive(k, rid, &wc, &mut events),
            None => false,
        }
    };
    cx.emit(events);
    if !found && cx.sh.settings.read().delete_missing_is_404 {
        return Err(ApiError::object_not_found(id));
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

fn batch_envelope(results: Vec<Value>, errors: Vec<Value>, started: i64) -> (StatusCode, Value) {
    let mut body = json!({
        "status": "COMPLETE",
        "results": results,
        "startedAt": iso(started),
        "completedAt": iso(now_ms()),
    });
    if errors.is_empty() {
        (StatusCode::OK, body)
    } else {
        body["numErrors"] = json!(errors.len());
        body["errors"] = Value::Array(errors);
        (StatusCode::MULTI_STATUS, body)
    }
}

fn check_batch_size(n: usize) -> Result<(), ApiError> {
    if n > 100 {
        return Err(ApiError::validation_errors(
            format!("Batch input contains {n} inputs; the maximum is 100"),
            vec![
                json!({"message": "The maximum number of inputs is 100", "code": "TOO_MANY_INPUTS"}),
            ],
        ));
    }
    Ok(())
}

/// Error entry of a 207 answer.
fn std_error(category: &str, message: String, context: Value) -> Value {
    json!({"status": "error", "category": category, "message": message, "context": context})
}

fn error_to_std(e: &ApiError, trace: Option<&str>) -> Value {
    let category = e
        .body
        .get("category")
        .and_then(Value::as_str)
        .unwrap_or("VALIDATION_ERROR")
        .to_owned();
    let message = e
        .body
        .get("message")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    let mut ctx = e.body.get("context").cloned().unwrap_or_else(|| json!({}));
    if let Some(t) = trace {
        ctx["objectWriteTraceId"] = json!([t]);
    }
    let mut v = std_error(&category, message, ctx);
    if let Some(errs) = e.body.get("errors") {
        v["errors"] = errs.clone();
    }
    v
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct BatchIn<T> {
    inputs: Vec<T>,
    #[serde(default)]
    properties: Vec<String>,
    #[serde(default)]
    id_property: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct UpdateItem {
    #[serde(deserialize_with = "de_id")]
    id: String,
    #[serde(default)]
    properties: Map<String, Value>,
    #[serde(default)]
    id_property: Option<String>,
    #[serde(default)]
    object_write_trace_id: Option<String>,
}

fn unique_traces<'a>(traces: impl Iterator<Item = Option<&'a str>>) -> bool {
    let mut seen = std::collections::HashSet::new();
    for t in traces {
        match t {
            Some(t) if seen.insert(t) => {}
            _ => return false,
        }
    }
    true
}

fn batch(cx: &Ctx<'_>, k: ObjectKind, op: BatchOp, req: &Req) -> Result<Response, ApiError> {
    let started = now_ms();
    match op {
        BatchOp::Read => {
            let input: BatchIn<IdIn> = req.parse()?;
            check_batch_size(input.inputs.len())?;
            let data = cx.portal.data.read();
            if let Some(p) = &input.id_property {
                data.check_id_property(k, p)?;
            }
            let archived = req.q_bool("archived");
            let sel = PropSelection::from_list(input.properties.clone());
            let store = data.store(k);
            let mut results = Vec::new();
            let mut missing = Vec::new();
            let mut seen = std::collections::HashSet::new();
            for i in &input.inputs {
                let found = if archived {
                    i.id.trim()
                        .parse::<u64>()
                        .ok()
                        .filter(|n| store.archived.contains_key(n))
                } else {
                    match input.id_property.as_deref() {
                        None | Some("hs_object_id") => {
                            i.id.trim()
                                .parse::<u64>()
                                .ok()
                                .filter(|n| store.live.contains_key(n))
                        }
                        Some(p) => data.lookup(k, &i.id, Some(p)),
                    }
                };
                match found {
                    Some(id) => {
                        if seen.insert(id) {
                            let map = if archived {
                                &store.archived
                            } else {
                                &store.live
                            };
                            if let Some(rec) = map.get(&id) {
                                results.push(data.render(k, id, rec, &sel));
                            }
                        }
                    }
                    None => missing.push(i.id.clone()),
                }
            }
            let errors = if missing.is_empty() {
                vec![]
            } else {
                vec![std_error(
                    "OBJECT_NOT_FOUND",
                    format!(
                        "Could not get some {} objects, they may be deleted or not exist. Check that ids are valid.",
                        k.upper()
                    ),
                    json!({"ids": missing}),
                )]
            };
            let (status, body) = batch_envelope(results, errors, started);
            Ok(json_resp(status, body))
        }
        BatchOp::Create => {
            let input: BatchIn<CreateIn> = req.parse()?;
            check_batch_size(input.inputs.len())?;
            let multi = unique_traces(
                input
                    .inputs
                    .iter()
                    .map(|i| i.object_write_trace_id.as_deref()),
            );
            let wc = cx.write_ctx();
            let mut events = Vec::new();
            let (results, errors) = {
                let mut data = cx.portal.data.write();
                // Whole-request validation unless multi-status is enabled.
                let mut prepared = Vec::new();
                for i in &input.inputs {
                    match data.prepare(k, &i.properties) {
                        Ok(w) => prepared.push(Ok(w)),
                        Err(e) if multi => prepared.push(Err(e)),
                        Err(e) => return Err(e),
                    }
                }
                // A duplicate unique value fails the whole request with one 409.
                let mut batch_seen: BTreeMap<(u16, String), ()> = BTreeMap::new();
                let uk = data.ukeys[k.index()].clone();
                for w in prepared.iter().flatten() {
                    for (idx, v) in w {
                        let Some(v) = v else { continue };
                        if !uk.uniques.contains(idx) {
                            continue;
                        }
                        if let Some(existing) = data.store(k).find_unique(*idx, v) {
                            return Err(ApiError::conflict(conflict_label(k), existing));
                        }
                        if batch_seen.insert((*idx, v.to_lowercase()), ()).is_some() {
                            return Err(ApiError::validation(format!(
                                "Duplicate unique value {v} in batch input"
                            )));
                        }
                    }
                }
                let mut results = Vec::new();
                let mut errors = Vec::new();
                for (i, p) in input.inputs.iter().zip(prepared) {
                    let trace = i.object_write_trace_id.as_deref();
                    let outcome = p.and_then(|_| create_one(&mut data, k, i, &wc, &mut events));
                    match outcome {
                        Ok((id, names)) => {
                            if let Some(rec) = data.store(k).live.get(&id) {
                                let mut o =
                                    data.render(k, id, rec, &PropSelection::DefaultPlus(names));
                                if let Some(t) = trace {
                                    o["objectWriteTraceId"] = json!(t);
                                }
                                results.push(o);
                            }
                        }
                        Err(e) if multi => errors.push(error_to_std(&e, trace)),
                        Err(e) => return Err(e),
                    }
                }
                (results, errors)
            };
            cx.emit(events);
            let (status, body) = batch_envelope(results, errors, started);
            let status = if status == StatusCode::OK {
                StatusCode::CREATED
            } else {
                status
            };
            Ok(json_resp(status, body))
        }
        BatchOp::Update => {
            let input: BatchIn<UpdateItem> = req.parse()?;
            check_batch_size(input.inputs.len())?;
            let mut ids_seen = std::collections::HashSet::new();
            for i in &input.inputs {
                if !ids_seen.insert(i.id.trim().to_owned()) {
                    return Err(ApiError::validation(format!(
                        "Duplicate IDs found in batch input: [{}]. IDs must be unique",
                        i.id
                    )));
                }
            }
            let multi = unique_traces(
                input
                    .inputs
                    .iter()
                    .map(|i| i.object_write_trace_id.as_deref()),
            );
            let wc = cx.write_ctx();
            let mut events = Vec::new();
            let (results, errors) = {
                let mut data = cx.portal.data.write();
                let mut plans = Vec::new();
                let mut missing = Vec::new();
                for i in &input.inputs {
                    let idp = i.id_property.as_deref();
                    if let Some(p) = idp {
                        data.check_id_property(k, p)?;
                    }
                    let rid = match idp {
                        None | Some("hs_object_id") => {
                            i.id.trim()
                                .parse::<u64>()
                                .ok()
                                .filter(|n| data.store(k).live.contains_key(n))
                        }
                        Some(p) => data.lookup(k, &i.id, Some(p)),
                    };
                    let Some(rid) = rid else {
                        // Former ids of merged records are omitted silently (observed).
                        let merged =
                            i.id.trim()
                                .parse::<u64>()
                                .ok()
                                .is_some_and(|n| data.store(k).aliases.contains_key(&n));
                        if !merged {
                            missing.push(i.id.clone());
                        }
                        continue;
                    };
                    match data.prepare(k, &i.properties) {
                        Ok(w) => plans.push((i, rid, Ok(w))),
                        Err(e) if multi => plans.push((i, rid, Err(e))),
                        Err(e) => return Err(e),
                    }
                }
                let mut results = Vec::new();
                let mut errors = Vec::new();
                for (i, rid, plan) in plans {
                    let trace = i.object_write_trace_id.as_deref();
                    let outcome = plan.and_then(|w| {
                        let names = written_names(&data, k, &w);
                        data.update(k, rid, &w, &wc, &mut events).map(|()| names)
                    });
                    match outcome {
                        Ok(names) => {
                            if let Some(rec) = data.store(k).live.get(&rid) {
                                let mut o =
                                    data.render(k, rid, rec, &PropSelection::DefaultPlus(names));
                                if let Some(t) = trace {
                                    o["objectWriteTraceId"] = json!(t);
                                }
                                results.push(o);
                            }
                        }
                        Err(e) if multi => errors.push(error_to_std(&e, trace)),
                        Err(e) => return Err(e),
                    }
                }
                if !missing.is_empty() {
                    errors.push(std_error(
                        "OBJECT_NOT_FOUND",
                        format!("Could not get some {} objects, they may be deleted or not exist. Check that ids are valid.", k.upper()),
                        json!({"ids": missing}),
                    ));
                }
                (results, errors)
            };
            cx.emit(events);
            let (status, body) = batch_envelope(results, errors, started);
            Ok(json_resp(status, body))
        }
        BatchOp::Upsert => {
            let input: BatchIn<UpdateItem> = req.parse()?;
            check_batch_size(input.inputs.len())?;
            let wc = cx.write_ctx();
            let mut events = Vec::new();
            let results = {
                let mut data = cx.portal.data.write();
                // Validate everything first: partial upserts are not supported.
                let mut plans = Vec::new();
                for i in &input.inputs {
                    let p = i
                        .id_property
                        .clone()
                        .or_else(|| input.id_property.clone())
                        .ok_or_else(|| ApiError::validation("idProperty is required for upsert"))?;
                    data.check_id_property(k, &p)?;
                    let mut props = i.properties.clone();
                    if p != "hs_object_id" {
                        props.insert(p.clone(), Value::String(i.id.clone()));
                    }
                    let w = data.prepare(k, &props)?;
                    plans.push((i, p, w));
                }
                let mut results = Vec::new();
                for (i, p, w) in plans {
                    let existing = data.lookup(k, &i.id, Some(&p));
                    let names = written_names(&data, k, &w);
                    let (id, new) = match existing {
                        Some(id) => {
                            data.update(k, id, &w, &wc, &mut events)?;
                            (id, false)
                        }
                        None => {
                            if p == "hs_object_id" {
                                return Err(ApiError::object_not_found(&i.id));
                            }
                            (data.create(k, w, &wc, &mut events)?, true)
                        }
                    };
                    if let Some(rec) = data.store(k).live.get(&id) {
                        let mut o = data.render(k, id, rec, &PropSelection::DefaultPlus(names));
                        o["new"] = Value::Bool(new);
                        results.push(o);
                    }
                }
                results
            };
            cx.emit(events);
            let (status, body) = batch_envelope(results, vec![], started);
            Ok(json_resp(status, body))
        }
        BatchOp::Archive => {
            let input: BatchIn<IdIn> = req.parse()?;
            check_batch_size(input.inputs.len())?;
            let wc = cx.write_ctx();
            let mut events = Vec::new();
            {
                let mut data = cx.portal.data.write();
                for i in &input.inputs {
                    if let Some(id) =
                        i.id.trim()
                            .parse::<u64>()
                            .ok()
                            .filter(|n| data.store(k).live.contains_key(n))
                    {
                        data.archive(k, id, &wc, &mut events);
                    }
                }
            }
            cx.emit(events);
            Ok(StatusCode::NO_CONTENT.into_response())
        }
    }
}

fn conflict_label(k: ObjectKind) -> &'static str {
    match k {
        ObjectKind::Contact => "Contact",
        ObjectKind::Company => "Company",
        ObjectKind::Deal => "Deal",
    }
}

fn search(cx: &Ctx<'_>, k: ObjectKind, req: &Req) -> Result<Response, ApiError> {
    let limits = cx.sh.settings.read().search_limits;
    let now = now_ms();
    {
        let needs_expiry = !cx.portal.data.read().store(k).overlay.is_empty();
        if needs_expiry {
            cx.portal.data.write().stores[k.index()].expire_overlay(now);
        }
    }
    let data = cx.portal.data.read();
    let sr = SearchRequest::parse(&req.body, &data, k, &limits)?;
    let (total, page) = sr.run(&data, k, now);
    let store = data.store(k);
    let results: Vec<Value> = page
        .iter()
        .filter_map(|id| {
            store
                .visible(*id, now)
                .map(|rec| data.render(k, *id, rec, &sr.selection))
        })
        .collect();
    let mut body = json!({"total": total, "results": results});
    let next = sr.offset + results.len();
    if next < total && !results.is_empty() {
        body["paging"] = json!({"next": {"after": next.to_string()}});
    }
    Ok(json_resp(StatusCode::OK, body))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct MergeIn {
    #[serde(deserialize_with = "de_id")]
    primary_object_id: String,
    #[serde(deserialize_with = "de_id")]
    object_id_to_merge: String,
}

fn merge(cx: &Ctx<'_>, k: ObjectKind, req: &Req) -> Result<Response, ApiError> {
    let input: MergeIn = req.parse()?;
    let parse = |s: &str| {
        s.trim()
            .parse::<u64>()
            .map_err(|_| ApiError::object_not_found(s))
    };
    let (p, s) = (
        parse(&input.primary_object_id)?,
        parse(&input.object_id_to_merge)?,
    );
    let wc = cx.write_ctx();
    let mut events = Vec::new();
    let body = {
        let mut data = cx.portal.data.write();
        let id = data.merge(k, p, s, &wc, &mut events)?;
        let rec = data
            .store(k)
            .live
            .get(&id)
            .ok_or_else(|| ApiError::object_not_found(&id.to_string()))?;
        data.render(k, id, rec, &PropSelection::Default)
    };
    cx.emit(events);
    Ok(json_resp(StatusCode::OK, body))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct GdprIn {
    #[serde(deserialize_with = "de_id")]
    object_id: String,
    #[serde(default)]
    id_property: Option<String>,
}

fn gdpr_delete(cx: &Ctx<'_>, req: &Req) -> Result<Response, ApiError> {
    let input: GdprIn = req.parse()?;
    let wc = cx.write_ctx();
    let mut events = Vec::new();
    {
        let mut data = cx.portal.data.write();
        let k = ObjectKind::Contact;
        if let Some(id) = data.lookup(k, &input.object_id, input.id_property.as_deref()) {
            let uk = data.ukeys[k.index()].clone();
            data.stores[k.index()].note_write(id, wc.now, wc.lag_ms);
            data.stores[k.index()].remove_live(id, &uk);
            events.push(ChangeEvent {
                kind: k,
                object_id: id,
                change: crate::portal::Change::Deletion,
                occurred_at: wc.now,
                actor: wc.actor,
            });
        }
    }
    cx.emit(events);
    Ok(StatusCode::NO_CONTENT.into_response())
}

fn prop_list(cx: &Ctx<'_>, k: ObjectKind, req: &Req) -> Result<Response, ApiError> {
    let archived = req.q_bool("archived");
    let data = cx.portal.data.read();
    let results: Vec<Value> = data
        .reg(k)
        .all()
        .filter(|d| d.archived == archived)
        .map(PropertyDef::to_json)
        .collect();
    Ok(json_resp(StatusCode::OK, json!({"results": results})))
}

fn prop_not_found(name: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "OBJECT_NOT_FOUND",
        format!("Unable to find property {name}"),
    )
}

fn prop_get(cx: &Ctx<'_>, k: ObjectKind, name: &str) -> Result<Response, ApiError> {
    let data = cx.portal.data.read();
    let def = data.reg(k).get(name).ok_or_else(|| prop_not_found(name))?;
    Ok(json_resp(StatusCode::OK, def.to_json()))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PropIn {
    name: Option<String>,
    label: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
    field_type: Option<String>,
    group_name: Option<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    options: Option<Vec<PropOption>>,
    #[serde(default)]
    has_unique_value: Option<bool>,
}

fn prop_create(cx: &Ctx<'_>, k: ObjectKind, req: &Req) -> Result<Response, ApiError> {
    let p: PropIn = req.parse()?;
    let mut missing = Vec::new();
    for (n, v) in [
        ("name", &p.name),
        ("label", &p.label),
        ("type", &p.kind),
        ("fieldType", &p.field_type),
        ("groupName", &p.group_name),
    ] {
        if v.as_deref().is_none_or(str::is_empty) {
            missing.push(json!({"message": format!("{n} is required"), "code": "REQUIRED_FIELD", "context": {"field": [n]}}));
        }
    }
    if !missing.is_empty() {
        return Err(ApiError::validation_errors(
            "Invalid property definition",
            missing,
        ));
    }
    let name = p.name.unwrap_or_default();
    let type_name = p.kind.unwrap_or_default();
    let kind_t = PropType::parse(&type_name)
        .ok_or_else(|| ApiError::validation(format!("Invalid property type {type_name}")))?;
    let field_type = p.field_type.unwrap_or_default();
    if !kind_t.allowed_field_types().contains(&field_type.as_str()) {
        return Err(ApiError::validation(format!(
            "Invalid fieldType {field_type} for type {type_name}"
        )));
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        || name.starts_with(|c: char| c.is_ascii_digit())
    {
        return Err(ApiError::validation(format!(
            "Property name {name} must be lower case letters, digits and underscores"
        )));
    }
    let unique = p.has_unique_value.unwrap_or(false);
    let now = now_ms();
    let def_json = {
        let mut data = cx.portal.data.write();
        let i = k.index();
        if data.props[i].index_any(&name).is_some() {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "OBJECT_ALREADY_EXISTS",
                format!("Property named '{name}' already exists."),
            ));
        }
        if data.props[i].all().filter(|d| !d.hubspot_defined).count() >= 1000 {
            return Err(ApiError::validation(
                "Cannot create more than 1000 custom properties per object",
            ));
        }
        if unique && data.props[i].unique_count() >= 10 {
            return Err(ApiError::validation(
                "Cannot create more than 10 unique value properties per object",
            ));
        }
        let mut options = p.options.unwrap_or_default();
        if kind_t == PropType::Bool && options.is_empty() {
            options = ["true", "false"]
                .iter()
                .map(|v| PropOption {
                    label: if *v == "true" {
                        "Yes".into()
                    } else {
                        "No".into()
                    },
                    value: (*v).into(),
                    hidden: false,
                    description: None,
                    display_order: None,
                })
                .collect();
        }
        let def = PropertyDef {
            name: name.clone(),
            label: p.label.unwrap_or_default(),
            kind: kind_t,
            field_type,
            group_name: p.group_name.unwrap_or_default(),
            description: p.description.unwrap_or_default(),
            options,
            unique,
            hubspot_defined: false,
            read_only: false,
            created_at: now,
            archived: false,
        };
        let j = def.to_json();
        data.props[i].push(def);
        data.refresh_ukeys(k);
        j
    };
    {
        let mut subs = cx.portal.subs.write();
        if subs.auto_new_properties {
            subs.add(
                &format!("{}.propertyChange", k.singular()),
                Some(name.clone()),
                true,
                now,
            );
        }
    }
    let mut resp = json_resp(StatusCode::CREATED, def_json);
    if let Ok(v) =
        axum::http::HeaderValue::from_str(&format!("/crm/v3/properties/{}/{name}", k.plural()))
    {
        resp.headers_mut().insert("location", v);
    }
    Ok(resp)
}

fn prop_update(cx: &Ctx<'_>, k: ObjectKind, name: &str, req: &Req) -> Result<Response, ApiError> {
    let p: PropIn = req.parse()?;
    let mut data = cx.portal.data.write();
    let i = k.index();
    let idx = data.props[i]
        .index(name)
        .ok_or_else(|| prop_not_found(name))?;
    if data.props[i].def(idx).hubspot_defined {
        return Err(ApiError::validation(format!(
            "Property {name} is a HubSpot-defined property and cannot be modified"
        )));
    }
    if let Some(u) = p.has_unique_value
        && u != data.props[i].def(idx).unique
    {
        return Err(ApiError::validation(
            "hasUniqueValue cannot be changed once set",
        ));
    }
    let def = data.props[i].def_mut(idx);
    if let Some(l) = p.label {
        def.label = l;
    }
    if let Some(d) = p.description {
        def.description = d;
    }
    if let Some(o) = p.options {
        def.options = o;
    }
    if let Some(g) = p.group_name {
        def.group_name = g;
    }
    Ok(json_resp(StatusCode::OK, def.to_json()))
}

fn prop_archive(cx: &Ctx<'_>, k: ObjectKind, name: &str) -> Result<Response, ApiError> {
    let mut data = cx.portal.data.write();
    let i = k.index();
    let idx = data.props[i]
        .index(name)
        .ok_or_else(|| prop_not_found(name))?;
    if data.props[i].def(idx).hubspot_defined {
        return Err(ApiError::validation(format!(
            "Property {name} is a HubSpot-defined property and cannot be archived"
        )));
    }
    data.props[i].def_mut(idx).archived = true;
    data.refresh_ukeys(k);
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Debug, Deserialize)]
struct NameIn {
    name: String,
}

fn prop_batch_read(cx: &Ctx<'_>, k: ObjectKind, req: &Req) -> Result<Response, ApiError> {
    #[derive(Deserialize)]
    struct In {
        inputs: Vec<NameIn>,
    }
    let input: In = req.parse()?;
    let started = now_ms();
    let data = cx.portal.data.read();
    let mut results = Vec::new();
    let mut missing = Vec::new();
    for n in &input.inputs {
        match data.reg(k).get(&n.name) {
            Some(d) => results.push(d.to_json()),
            None => missing.push(n.name.clone()),
        }
    }
    let errors = if missing.is_empty() {
        vec![]
    } else {
        vec![std_error(
            "OBJECT_NOT_FOUND",
            "Some properties could not be found".into(),
            json!({"names": missing}),
        )]
    };
    let (status, body) = batch_envelope(results, errors, started);
    Ok(json_resp(status, body))
}

fn parse_id(s: &str) -> Result<u64, ApiError> {
    s.trim().parse().map_err(|_| ApiError::object_not_found(s))
}

fn labels_between(
    data: &PortalData,
    f: ObjectKind,
    fid: u64,
    t: ObjectKind,
    tid: u64,
) -> Vec<Value> {
    data.assoc
        .list((f, fid), t)
        .into_iter()
        .filter(|(id, _)| *id == tid)
        .flat_map(|(_, types)| types)
        .filter_map(assoc_type)
        .filter_map(|t| t.label.map(|l| Value::String(l.to_owned())))
        .collect()
}

fn assoc_types_json(types: &[u32]) -> Vec<Value> {
    types
        .iter()
        .filter_map(|t| assoc_type(*t))
        .map(|t| json!({"category": "HUBSPOT_DEFINED", "typeId": t.id, "label": t.label}))
        .collect()
}

fn default_result(f: ObjectKind, fid: u64, t: ObjectKind, tid: u64) -> Vec<Value> {
    let ty = default_assoc(f, t);
    let inv = default_assoc(t, f);
    vec![
        json!({"from": {"id": fid.to_string()}, "to": {"id": tid.to_string()}, "associationSpec": {"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": ty.id}}),
        json!({"from": {"id": tid.to_string()}, "to": {"id": fid.to_string()}, "associationSpec": {"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": inv.id}}),
    ]
}

fn assoc_put(
    cx: &Ctx<'_>,
    f: ObjectKind,
    fid: &str,
    t: ObjectKind,
    tid: &str,
    types: Option<Vec<AssocSpecIn>>,
) -> Result<Response, ApiError> {
    let started = now_ms();
    let (fid, tid) = (parse_id(fid)?, parse_id(tid)?);
    let wc = cx.write_ctx();
    let mut events = Vec::new();
    let resp = {
        let mut data = cx.portal.data.write();
        let fid = data.store(f).resolve(fid);
        let tid = data.store(t).resolve(tid);
        match types {
            None => {
                data.associate((f, fid), (t, tid), default_assoc(f, t).id, &wc, &mut events)?;
                let (status, body) =
                    batch_envelope(default_result(f, fid, t, tid), vec![], started);
                json_resp(status, body)
            }
            Some(types) => {
                for ty in &types {
                    data.associate((f, fid), (t, tid), ty.association_type_id, &wc, &mut events)?;
                }
                let body = json!({
                    "fromObjectTypeId": f.type_id(), "fromObjectId": fid,
                    "toObjectTypeId": t.type_id(), "toObjectId": tid,
                    "labels": labels_between(&data, f, fid, t, tid),
                });
                json_resp(StatusCode::CREATED, body)
            }
        }
    };
    cx.emit(events);
    Ok(resp)
}

fn assoc_delete(
    cx: &Ctx<'_>,
    f: ObjectKind,
    fid: &str,
    t: ObjectKind,
    tid: &str,
) -> Result<Response, ApiError> {
    let (fid, tid) = (parse_id(fid)?, parse_id(tid)?);
    let wc = cx.write_ctx();
    let mut events = Vec::new();
    cx.portal
        .data
        .write()
        .dissociate((f, fid), (t, tid), &wc, &mut events);
    cx.emit(events);
    Ok(StatusCode::NO_CONTENT.into_response())
}

fn assoc_page(
    data: &PortalData,
    f: ObjectKind,
    fid: u64,
    t: ObjectKind,
    after: u64,
    limit: usize,
) -> (Vec<Value>, Option<u64>) {
    let all = data.assoc.list((f, fid), t);
    let mut results = Vec::new();
    let mut next = None;
    for (tid, types) in all.into_iter().filter(|(id, _)| *id > after) {
        if results.len() == limit {
            next = results
                .last()
                .and_then(|r: &Value| r["toObjectId"].as_u64());
            break;
        }
        results.push(json!({"toObjectId": tid, "associationTypes": assoc_types_json(&types)}));
    }
    (results, next)
}

fn assoc_list(
    cx: &Ctx<'_>,
    f: ObjectKind,
    fid: &str,
    t: ObjectKind,
    req: &Req,
) -> Result<Response, ApiError> {
    let fid = parse_id(fid)?;
    let limit = parse_limit(req, 500, 500, false)?;
    let after: u64 = req
        .q("after")
        .and_then(|a| a.trim().parse().ok())
        .unwrap_or(0);
    let data = cx.portal.data.read();
    let fid = data.store(f).resolve(fid);
    let (results, next) = assoc_page(&data, f, fid, t, after, limit);
    let mut body = json!({"results": results});
    if let Some(n) = next {
        body["paging"] = json!({"next": {"after": n.to_string()}});
    }
    Ok(json_resp(StatusCode::OK, body))
}

#[derive(Debug, Deserialize)]
struct AssocBatchItem {
    #[serde(default)]
    from: Option<IdIn>,
    #[serde(default, deserialize_with = "de_opt_id")]
    id: Option<String>,
    #[serde(default)]
    to: Option<Value>,
    #[serde(default)]
    types: Vec<AssocSpecIn>,
    #[serde(default)]
    after: Option<String>,
}

impl AssocBatchItem {
    fn source_id(&self) -> Result<u64, ApiError> {
        let raw = self
            .from
            .as_ref()
            .map(|f| f.id.as_str())
            .or(self.id.as_deref());
        let raw = raw.ok_or_else(|| {
            ApiError::validation("each input needs `from.id` (or `id` for batch read)")
        })?;
        parse_id(raw)
    }
}

fn de_opt_id<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    de_id(d).map(Some)
}

fn value_ids(v: &Value) -> Vec<String> {
    match v {
        Value::Array(a) => a.iter().flat_map(value_ids).collect(),
        Value::Object(o) => o
            .get("id")
            .map(|i| match i {
                Value::String(s) => vec![s.clone()],
                other => vec![other.to_string()],
            })
            .unwrap_or_default(),
        _ => vec![],
    }
}

fn assoc_batch(
    cx: &Ctx<'_>,
    f: ObjectKind,
    t: ObjectKind,
    op: AssocBatchOp,
    req: &Req,
) -> Result<Response, ApiError> {
    #[derive(Deserialize)]
    struct In {
        inputs: Vec<AssocBatchItem>,
    }
    let input: In = req.parse()?;
    let max = match op {
        AssocBatchOp::Read => 1000,
        _ => 2000,
    };
    if input.inputs.len() > max {
        return Err(ApiError::validation(format!(
            "Batch input contains {} inputs; the maximum is {max}",
            input.inputs.len()
        )));
    }
    let started = now_ms();
    let wc = cx.write_ctx();
    let mut events = Vec::new();
    let resp = match op {
        AssocBatchOp::Read => {
            let data = cx.portal.data.read();
            let mut results = Vec::new();
            let mut errors = Vec::new();
            for i in &input.inputs {
                let fid = i.source_id()?;
                let after = i
                    .after
                    .as_deref()
                    .and_then(|a| a.trim().parse().ok())
                    .unwrap_or(0);
                let (to, next) = assoc_page(&data, f, fid, t, after, 500);
                if to.is_empty() {
                    errors.push(json!({
                        "status": "error", "category": "OBJECT_NOT_FOUND",
                        "subCategory": "crm.associations.NO_ASSOCIATIONS_FOUND",
                        "message": format!("No {} is associated with {} {fid}.", t.singular(), f.singular()),
                        "context": {"fromObjectId": [fid.to_string()]},
                    }));
                    continue;
                }
                let mut r = json!({"from": {"id": fid.to_string()}, "to": to});
                if let Some(n) = next {
                    r["paging"] = json!({"next": {"after": n.to_string()}});
                }
                results.push(r);
            }
            let (status, body) = batch_envelope(results, errors, started);
            json_resp(status, body)
        }
        AssocBatchOp::Create | AssocBatchOp::Default => {
            let mut data = cx.portal.data.write();
            let mut results = Vec::new();
            let mut errors = Vec::new();
            for i in &input.inputs {
                let fid = data.store(f).resolve(i.source_id()?);
                for tid_s in i.to.as_ref().map(value_ids).unwrap_or_default() {
                    let tid = data.store(t).resolve(parse_id(&tid_s)?);
                    let type_ids: Vec<u32> = if op == AssocBatchOp::Default || i.types.is_empty() {
                        vec![default_assoc(f, t).id]
                    } else {
                        i.types.iter().map(|x| x.association_type_id).collect()
                    };
                    let mut ok = true;
                    for ty in type_ids {
                        if let Err(e) = data.associate((f, fid), (t, tid), ty, &wc, &mut events) {
                            errors.push(error_to_std(&e, None));
                            ok = false;
                            break;
                        }
                    }
                    if ok {
                        if op == AssocBatchOp::Default {
                            results.extend(default_result(f, fid, t, tid));
                        } else {
                            results.push(json!({
                                "fromObjectTypeId": f.type_id(), "fromObjectId": fid,
                                "toObjectTypeId": t.type_id(), "toObjectId": tid,
                                "labels": labels_between(&data, f, fid, t, tid),
                            }));
                        }
                    }
                }
            }
            let (status, body) = batch_envelope(results, errors, started);
            let status = if status == StatusCode::OK && op == AssocBatchOp::Create {
                StatusCode::CREATED
            } else {
                status
            };
            json_resp(status, body)
        }
        AssocBatchOp::Archive => {
            let mut data = cx.portal.data.write();
            for i in &input.inputs {
                let fid = i.source_id()?;
                for tid_s in i.to.as_ref().map(value_ids).unwrap_or_default() {
                    let tid = parse_id(&tid_s)?;
                    data.dissociate((f, fid), (t, tid), &wc, &mut events);
                }
            }
            StatusCode::NO_CONTENT.into_response()
        }
    };
    cx.emit(events);
    Ok(resp)
}
