//! The OpenAPI 3.1 document of the unified API, served at `/openapi.json`.
//!
//! The record schemas and filter parameters are generated from the mappings' field
//! declarations (`<type>.fields.toml`), so a field added there is documented without Rust
//! code; the rest (routes, parameters, the error shape, headers) is written out here.

use hubsync_core::ObjectType;
use hubsync_mapping::Mappings;
use hubsync_mapping::filter::Op;
use hubsync_mapping::spec::{FieldSpec, FieldType};
use serde_json::{Map, Value, json};

use super::resources::{DEFAULT_LIMIT, MAX_LIMIT};

/// Association fields each type has besides its mapped properties (they are app-table
/// columns synced through HubSpot's associations API).
fn association_fields(ty: ObjectType) -> Vec<(&'static str, Value)> {
    let company =
        json!({"type": "integer", "description": "The local id of the associated company."});
    match ty {
        ObjectType::Contacts => vec![("company_id", company)],
        ObjectType::Companies => Vec::new(),
        ObjectType::Deals => vec![
            ("company_id", company),
            (
                "contact_ids",
                json!({"type": "array", "description": "The local ids of the associated contacts."}),
            ),
        ],
    }
}

/// Query names probed for aliases (`email` → `email_addresses[contains]`), to document those
/// the mapping declares.
const ALIAS_CANDIDATES: [&str; 8] = [
    "email",
    "phone",
    "domain",
    "name",
    "updated_after",
    "updated_before",
    "created_after",
    "created_before",
];

fn schema_name(ty: ObjectType) -> &'static str {
    match ty {
        ObjectType::Contacts => "Contact",
        ObjectType::Companies => "Company",
        ObjectType::Deals => "Deal",
    }
}

fn field_schema(spec: &FieldSpec) -> Value {
    match spec.ty {
        FieldType::String => json!({"type": "string"}),
        FieldType::Integer => json!({"type": "integer"}),
        FieldType::Number => json!({"type": "number"}),
        FieldType::Date => json!({"type": "string", "format": "date"}),
        FieldType::Datetime => json!({"type": "string", "format": "date-time"}),
        FieldType::StringList | FieldType::EmailList => {
            let item = if spec.ty == FieldType::EmailList {
                json!({"type": "string", "format": "email"})
            } else {
                json!({"type": "string"})
            };
            let mut s = json!({"type": "array", "items": item});
            if let (Some(max), Some(obj)) = (spec.max_items, s.as_object_mut()) {
                obj.insert("maxItems".into(), json!(max));
            }
            s
        }
        FieldType::Object => {
            let props: Map<String, Value> = spec
                .keys
                .iter()
                .map(|k| (k.clone(), json!({"type": "string"})))
                .collect();
            json!({"type": "object", "properties": props, "additionalProperties": false})
        }
    }
}

/// The same schema, also accepting `null` (a write clearing the field).
fn nullable(schema: &Value) -> Value {
    let mut s = schema.clone();
    if let Some(obj) = s.as_object_mut()
        && let Some(Value::String(t)) = obj.get("type").cloned()
    {
        obj.insert("type".into(), json!([t, "null"]));
    }
    s
}

/// The record schema and the write-body schema of a type.
fn record_schemas(mappings: &Mappings, ty: ObjectType) -> (Value, Value) {
    let mut fields: Vec<(String, Value)> = mappings
        .field_specs(ty)
        .iter()
        .filter(|(_, spec)| spec.mapped)
        .map(|(name, spec)| (name.clone(), field_schema(spec)))
        .collect();
    fields.extend(
        association_fields(ty)
            .into_iter()
            .map(|(n, s)| (n.to_owned(), s)),
    );
    let custom = json!({
        "type": "object",
        "description": "HubSpot properties outside the unified model, by property name.",
        "additionalProperties": {"type": ["string", "number", "boolean"]},
    });

    let mut record = Map::new();
    record.insert(
        "id".into(),
        json!({"type": ["string", "null"], "description": "The local id; null only for a remote record the mirror does not hold yet."}),
    );
    record.insert(
        "hubspot_id".into(),
        json!({"type": ["string", "null"], "description": "The HubSpot record id, once it exists there."}),
    );
    record.insert(
        "created_at".into(),
        json!({"type": "string", "format": "date-time"}),
    );
    record.insert(
        "updated_at".into(),
        json!({"type": "string", "format": "date-time"}),
    );
    record.insert(
        "deleted".into(),
        json!({"type": "boolean", "description": "Present (true) on the answer to a delete."}),
    );
    record.insert(
        "sync".into(),
        json!({"$ref": "#/components/schemas/SyncStatus"}),
    );
    record.insert("custom_fields".into(), custom.clone());
    let mut input = Map::new();
    for (name, schema) in &fields {
        record.insert(name.clone(), schema.clone());
        input.insert(name.clone(), nullable(schema));
    }
    input.insert("custom_fields".into(), {
        let mut c = custom;
        if let Some(obj) = c.as_object_mut() {
            obj.insert(
                "additionalProperties".into(),
                json!({"type": ["string", "number", "boolean", "null"]}),
            );
        }
        c
    });
    (
        json!({
            "type": "object",
            "required": ["id", "hubspot_id", "created_at", "updated_at", "sync"],
            "properties": record,
            "additionalProperties": false,
        }),
        json!({
            "type": "object",
            "description": "Fields to write; on PATCH only the fields given change, and null clears a field.",
            "properties": input,
            "additionalProperties": false,
        }),
    )
}

/// The filter parameters of a listing: `field` (equality) and `field[op]` per declared
/// operator, and the declared aliases.
fn filter_parameters(mappings: &Mappings, ty: ObjectType) -> Vec<Value> {
    let rules = mappings.filter_rules(ty);
    let mut params = Vec::new();
    for (name, spec) in mappings.field_specs(ty) {
        let remote = |op: Op| {
            spec.search
                .as_ref()
                .is_some_and(|s| s.ops.as_ref().unwrap_or(&spec.ops).contains(&op))
        };
        for op in &spec.ops {
            let param = if *op == Op::Eq {
                name.clone()
            } else {
                format!("{name}[{op}]")
            };
            let value = match op {
                Op::In => "a comma-separated list of values",
                Op::Between => "`low,high`, both included",
                Op::IsNull | Op::NotNull => "`true` (or empty)",
                _ => "a value",
            };
            let where_ = if remote(*op) {
                "the mirror and HubSpot (`source=remote`)"
            } else {
                "the mirror only; with `source=remote` it is refused with 400 `filter_not_supported`"
            };
            params.push(json!({
                "name": param,
                "in": "query",
                "required": false,
                "schema": {"type": "string"},
                "description": format!("`{name}` {op} {value}. Works on {where_}."),
            }));
        }
    }
    for alias in ALIAS_CANDIDATES {
        // An alias parses; an unknown name is refused as unknown (the value may be refused too).
        let known = !matches!(
            rules.parse_one(alias, "2026-01-01T00:00:00Z"),
            Err(hubsync_mapping::FilterError::UnknownField { .. })
        );
        if known && !mappings.field_specs(ty).contains_key(alias) {
            params.push(json!({
                "name": alias,
                "in": "query",
                "required": false,
                "schema": {"type": "string"},
                "description": format!("Alias declared by the mapping (`{alias}` stands for a field with a fixed operator)."),
            }));
        }
    }
    params
}

fn error_response(description: &str, headers_guaranteed: bool) -> Value {
    json!({
        "description": description,
        "headers": rate_limit_headers(headers_guaranteed),
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    })
}

/// The `RateLimit-*` headers; `required` where the answer always names a known portal (an
/// answer refused before the portal is known, such as a 401, has none).
fn rate_limit_headers(required: bool) -> Value {
    let header =
        |d: &str| json!({"required": required, "schema": {"type": "integer"}, "description": d});
    json!({
        "RateLimit-Limit": header("Requests per window in the portal's HubSpot budget."),
        "RateLimit-Remaining": header("Requests left in the window, as hubsync sees it."),
        "RateLimit-Reset": header("Seconds until the window frees a request."),
    })
}

fn ok_response(description: &str, schema: &str) -> Value {
    json!({
        "description": description,
        "headers": rate_limit_headers(true),
        "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{schema}")}}},
    })
}

fn common_errors(responses: &mut Map<String, Value>) {
    for (status, what) in [
        (
            "400",
            "Invalid input: bad cursor, unknown field, invalid value, limit out of range, malformed JSON, missing portal, a filter HubSpot cannot express.",
        ),
        ("401", "Missing or unknown API key."),
        ("403", "The API key is not scoped to the portal."),
        ("404", "No such portal, resource or record."),
        ("405", "Method not allowed."),
        (
            "429",
            "HubSpot answered a remote read with 429 (passed on, with `Retry-After`).",
        ),
        ("502", "HubSpot failed a remote read."),
        (
            "503",
            "The portal has no working HubSpot connection (remote reads).",
        ),
    ] {
        responses.insert(status.into(), error_response(what, status == "429"));
    }
    if let Some(Value::Object(r)) = responses.get_mut("429")
        && let Some(Value::Object(h)) = r.get_mut("headers")
    {
        h.insert(
            "Retry-After".into(),
            json!({"required": true, "schema": {"type": "integer"}, "description": "Seconds to wait before retrying."}),
        );
    }
}

fn param_ref(name: &str) -> Value {
    json!({"$ref": format!("#/components/parameters/{name}")})
}

fn paths_of(mappings: &Mappings, ty: ObjectType, paths: &mut Map<String, Value>) {
    let name = schema_name(ty);
    let plural = ty.plural();
    let mut list_params = vec![
        param_ref("PortalHeader"),
        param_ref("PortalQuery"),
        param_ref("Cursor"),
        param_ref("Limit"),
        param_ref("Source"),
    ];
    list_params.extend(filter_parameters(mappings, ty));

    let mut list_responses = Map::new();
    list_responses.insert(
        "200".into(),
        ok_response("A page of records.", &format!("{name}Page")),
    );
    common_errors(&mut list_responses);

    let mut create_responses = Map::new();
    create_responses.insert(
        "201".into(),
        ok_response(
            "Created (with `wait=synced`: and accepted by HubSpot).",
            name,
        ),
    );
    create_responses.insert(
        "202".into(),
        ok_response(
            "`wait=synced` timed out; the record is written and its sync pending.",
            name,
        ),
    );
    create_responses.insert("422".into(), error_response("`wait=synced`: HubSpot refused the write (`sync_failed`, with HubSpot's reason and the record).", true));
    common_errors(&mut create_responses);

    let mut one_responses = Map::new();
    one_responses.insert("200".into(), ok_response("The record.", name));
    common_errors(&mut one_responses);

    let mut write_responses = Map::new();
    write_responses.insert(
        "200".into(),
        ok_response(
            "The record after the write (with `wait=synced`: accepted by HubSpot).",
            name,
        ),
    );
    write_responses.insert(
        "202".into(),
        ok_response(
            "`wait=synced` timed out; the write is stored and its sync pending.",
            name,
        ),
    );
    write_responses.insert(
        "422".into(),
        error_response(
            "`wait=synced`: HubSpot refused the write (`sync_failed`).",
            true,
        ),
    );
    common_errors(&mut write_responses);

    let body = json!({
        "required": true,
        "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{name}Input")}}},
    });
    let id_params = [
        param_ref("Id"),
        param_ref("PortalHeader"),
        param_ref("PortalQuery"),
    ];
    let with = |extra: &str| {
        let mut v = id_params.to_vec();
        v.push(param_ref(extra));
        v
    };
    paths.insert(
        format!("/unified/crm/{plural}"),
        json!({
            "get": {
                "operationId": format!("list_{plural}"),
                "summary": format!("List {plural}"),
                "description": "A page of live records in local-id order from the mirror, or with `source=remote` from HubSpot (a list page, or a search when filtered). Filters are ANDed. Custom properties filter as `custom_fields.<property>` or `custom_fields.<property>[op]`.",
                "parameters": list_params,
                "responses": list_responses,
            },
            "post": {
                "operationId": format!("create_{}", ty.singular()),
                "summary": format!("Create a {}", ty.singular()),
                "parameters": [param_ref("PortalHeader"), param_ref("PortalQuery"), param_ref("Wait")],
                "requestBody": body,
                "responses": create_responses,
            },
        }),
    );
    paths.insert(
        format!("/unified/crm/{plural}/{{id}}"),
        json!({
            "get": {
                "operationId": format!("get_{}", ty.singular()),
                "summary": format!("Get a {}", ty.singular()),
                "parameters": with("Source"),
                "responses": one_responses,
            },
            "patch": {
                "operationId": format!("update_{}", ty.singular()),
                "summary": format!("Update a {}", ty.singular()),
                "parameters": with("Wait"),
                "requestBody": body,
                "responses": write_responses,
            },
            "delete": {
                "operationId": format!("delete_{}", ty.singular()),
                "summary": format!("Delete a {}", ty.singular()),
                "description": "Soft-deletes the record; HubSpot archives it.",
                "parameters": with("Wait"),
                "responses": write_responses,
            },
        }),
    );
}

/// The whole document.
pub fn document(mappings: &Mappings) -> Value {
    let mut paths = Map::new();
    let mut schemas = Map::new();
    for ty in [
        ObjectType::Contacts,
        ObjectType::Companies,
        ObjectType::Deals,
    ] {
        paths_of(mappings, ty, &mut paths);
        let (record, input) = record_schemas(mappings, ty);
        let name = schema_name(ty);
        schemas.insert(name.to_owned(), record);
        schemas.insert(format!("{name}Input"), input);
        schemas.insert(
            format!("{name}Page"),
            json!({
                "type": "object",
                "required": ["results", "next_cursor"],
                "properties": {
                    "results": {"type": "array", "items": {"$ref": format!("#/components/schemas/{name}")}},
                    "next_cursor": {"type": ["string", "null"], "description": "Pass as `cursor` for the next page; null on the last page."},
                },
                "additionalProperties": false,
            }),
        );
    }
    schemas.insert(
        "SyncStatus".into(),
        json!({
            "type": "object",
            "required": ["status", "synced_at", "reason", "category"],
            "properties": {
                "status": {"type": "string", "enum": ["pending", "synced", "failed"]},
                "synced_at": {"type": ["string", "null"], "format": "date-time"},
                "reason": {"type": ["string", "null"], "description": "Why HubSpot refused the last write (failed only)."},
                "category": {"type": ["string", "null"], "description": "The failure's category (failed only)."},
            },
            "additionalProperties": false,
        }),
    );
    schemas.insert(
        "Error".into(),
        json!({
            "type": "object",
            "required": ["error"],
            "properties": {
                "error": {
                    "type": "object",
                    "required": ["code", "message", "field"],
                    "properties": {
                        "code": {"type": "string", "description": "A stable machine-readable code."},
                        "message": {"type": "string"},
                        "field": {"type": ["string", "null"], "description": "The query parameter, body field or header at fault."},
                    },
                    "additionalProperties": false,
                },
                "record": {"type": "object", "description": "For `sync_failed`: the record as stored."},
            },
            "additionalProperties": false,
        }),
    );

    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "hubsync unified CRM API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Contacts, companies and deals of each connected HubSpot portal in a flat unified model. Reads come from hubsync's local mirror (or HubSpot with `source=remote`); writes go through hubsync's outbox to HubSpot. Every request names its portal (`X-Hubsync-Portal` or `portal_id`) and carries an API key scoped to it. Every response carries `RateLimit-*` headers describing the portal's HubSpot budget.",
        },
        "security": [{"bearer": []}],
        "paths": paths,
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "description": "An API key from `hubsync` (`hsk_…`)."}},
            "schemas": schemas,
            "parameters": {
                "PortalHeader": {"name": "X-Hubsync-Portal", "in": "header", "required": false, "schema": {"type": "integer"}, "description": "The HubSpot portal id (or use `portal_id`)."},
                "PortalQuery": {"name": "portal_id", "in": "query", "required": false, "schema": {"type": "integer"}, "description": "The HubSpot portal id (or use the `X-Hubsync-Portal` header)."},
                "Cursor": {"name": "cursor", "in": "query", "required": false, "schema": {"type": "string"}, "description": "`next_cursor` of the previous page, unchanged."},
                "Limit": {"name": "limit", "in": "query", "required": false, "schema": {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": DEFAULT_LIMIT}},
                "Source": {"name": "source", "in": "query", "required": false, "schema": {"type": "string", "enum": ["local", "remote"], "default": "local"}, "description": "`remote` reads through to HubSpot, spending the portal's budget."},
                "Wait": {"name": "wait", "in": "query", "required": false, "schema": {"type": "string", "enum": ["synced"]}, "description": "Hold the answer until HubSpot accepted (or refused) the write, up to a server-set limit."},
                "Id": {"name": "id", "in": "path", "required": true, "schema": {"type": "string"}},
            },
        },
    })
}
