//! OpenAPI conformance: every answer of a scenario that touches every operation of the
//! unified API (successes and errors) is validated against the schema `/openapi.json` gives
//! for its path, method and status, with a small JSON-schema validator (the subset the
//! document uses: `$ref`, `type` with type arrays for nullable, `enum`, `required`,
//! `properties`, `additionalProperties`, `items`, `maxItems`, and the `date-time`, `date` and
//! `email` formats), and the documented headers are checked on each answer.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod unified_support;

use std::collections::BTreeSet;
use std::time::Duration;

use hubsync_emulator::Faults;
use hubsync_server::unified::UnifiedConfig;
use serde_json::{Value, json};
use unified_support::*;

/// The subset of JSON Schema the document uses.
fn validate(doc: &Value, schema: &Value, value: &Value, at: &str, errors: &mut Vec<String>) {
    if let Some(reference) = schema.get("$ref").and_then(Value::as_str) {
        let target = resolve(doc, reference).unwrap_or_else(|| panic!("dangling $ref {reference}"));
        return validate(doc, target, value, at, errors);
    }
    if let Some(ty) = schema.get("type") {
        let allowed: Vec<&str> = match ty {
            Value::String(s) => vec![s.as_str()],
            Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
            _ => panic!("bad type in schema at {at}"),
        };
        let ok = allowed.iter().any(|t| match *t {
            "null" => value.is_null(),
            "boolean" => value.is_boolean(),
            "object" => value.is_object(),
            "array" => value.is_array(),
            "string" => value.is_string(),
            "number" => value.is_number(),
            "integer" => value.is_i64() || value.is_u64(),
            other => panic!("unknown type {other} at {at}"),
        });
        if !ok {
            errors.push(format!("{at}: {value} is not of type {allowed:?}"));
            return;
        }
    }
    if let Some(options) = schema.get("enum").and_then(Value::as_array)
        && !options.contains(value)
    {
        errors.push(format!("{at}: {value} is not one of {options:?}"));
    }
    if let (Some(format), Some(text)) =
        (schema.get("format").and_then(Value::as_str), value.as_str())
    {
        let ok = match format {
            "date-time" => {
                time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
                    .is_ok()
            }
            "date" => time::Date::parse(
                text,
                &time::macros::format_description!("[year]-[month]-[day]"),
            )
            .is_ok(),
            "email" => text.contains('@'),
            _ => true,
        };
        if !ok {
            errors.push(format!("{at}: `{text}` is not a valid {format}"));
        }
    }
    if let Some(object) = value.as_object() {
        for key in schema
            .get("required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let key = key.as_str().unwrap();
            if !object.contains_key(key) {
                errors.push(format!("{at}: required `{key}` missing"));
            }
        }
        let properties = schema.get("properties").and_then(Value::as_object);
        for (key, v) in object {
            let at = format!("{at}.{key}");
            match properties.and_then(|p| p.get(key)) {
                Some(s) => validate(doc, s, v, &at, errors),
                None => match schema.get("additionalProperties") {
                    Some(Value::Bool(false)) => errors.push(format!("{at}: not allowed")),
                    Some(s @ Value::Object(_)) => validate(doc, s, v, &at, errors),
                    _ => {}
                },
            }
        }
    }
    if let Some(items) = value.as_array() {
        if let Some(item_schema) = schema.get("items") {
            for (i, v) in items.iter().enumerate() {
                validate(doc, item_schema, v, &format!("{at}[{i}]"), errors);
            }
        }
        if let Some(max) = schema.get("maxItems").and_then(Value::as_u64)
            && items.len() as u64 > max
        {
            errors.push(format!("{at}: more than {max} items"));
        }
    }
}

fn resolve<'a>(doc: &'a Value, reference: &str) -> Option<&'a Value> {
    let pointer = reference.strip_prefix('#')?;
    doc.pointer(pointer)
}

/// The document's path template for a concrete path (`/unified/crm/contacts/7` →
/// `/unified/crm/contacts/{id}`).
fn template<'a>(doc: &'a Value, path: &str) -> Option<&'a str> {
    let path = path.split('?').next().unwrap_or(path);
    let segments: Vec<&str> = path.split('/').collect();
    doc["paths"]
        .as_object()?
        .keys()
        .map(String::as_str)
        .find(|t| {
            let ts: Vec<&str> = t.split('/').collect();
            ts.len() == segments.len()
                && ts
                    .iter()
                    .zip(&segments)
                    .all(|(t, s)| t == s || (t.starts_with('{') && t.ends_with('}')))
        })
}

struct Checker {
    doc: Value,
    exercised: BTreeSet<(String, String, u16)>,
    errors: Vec<String>,
}

impl Checker {
    fn check(&mut self, method: &str, path: &str, r: &Resp) {
        let what = format!("{method} {path} → {}", r.status);
        let Some(tpl) = template(&self.doc, path) else {
            self.errors
                .push(format!("{what}: path not in the document"));
            return;
        };
        let tpl = tpl.to_owned();
        let op = &self.doc["paths"][&tpl][method.to_ascii_lowercase()];
        let response = &op["responses"][r.status.to_string()];
        if response.is_null() {
            self.errors.push(format!("{what}: status not documented"));
            return;
        }
        let schema = response["content"]["application/json"]["schema"].clone();
        let doc = self.doc.clone();
        validate(&doc, &schema, &r.body, &what, &mut self.errors);
        for (name, header) in response["headers"].as_object().into_iter().flatten() {
            if header["required"] == true && r.header(&name.to_ascii_lowercase()).is_none() {
                self.errors
                    .push(format!("{what}: documented header {name} missing"));
            }
        }
        self.exercised
            .insert((tpl, method.to_ascii_lowercase(), r.status));
    }
}

async fn call(h: &Harness, c: &mut Checker, method: &str, path: &str, body: Option<Value>) -> Resp {
    let r = h.call(method, path, body).await;
    c.check(method, path, &r);
    r
}

#[tokio::test]
async fn real_answers_conform_to_the_openapi_document() {
    let mut h = start().await;
    h.run_outbound();
    h.create_property(hubsync_core::ObjectType::Contacts, "arr__c", false)
        .await;
    let doc = h.send(h.http.get(format!("{}/openapi.json", h.base))).await;
    assert_eq!(doc.status, 200);
    assert_eq!(doc.body["openapi"], "3.1.0");
    let mut c = Checker {
        doc: doc.body,
        exercised: BTreeSet::new(),
        errors: Vec::new(),
    };

    let bodies = [
        (
            "contacts",
            json!({"first_name": "Ada", "email_addresses": ["ada@example.com"], "phone_numbers": ["+44 1"], "title": "Countess", "custom_fields": {"arr__c": "5"}}),
            json!({"title": null, "first_name": "Augusta"}),
        ),
        (
            "companies",
            json!({"name": "Acme", "domain": "acme.example", "address": {"city": "London"}, "employee_count": 12, "annual_revenue": 1.5}),
            json!({"industry": "Retail"}),
        ),
        (
            "deals",
            json!({"name": "Deal", "amount": 10, "close_date": "2026-12-31", "stage": "appointmentscheduled"}),
            json!({"amount": null}),
        ),
    ];
    for (resource, body, patch) in bodies {
        let list = format!("/unified/crm/{resource}");
        let created = call(&h, &mut c, "POST", &list, Some(body.clone())).await;
        assert_eq!(created.status, 201, "{}", created.body);
        let id = created.body["id"].as_str().unwrap().to_owned();
        let one = format!("{list}/{id}");
        call(&h, &mut c, "GET", &list, None).await;
        call(
            &h,
            &mut c,
            "GET",
            &format!("{list}?limit=1&updated_after=2020-01-01T00:00:00Z"),
            None,
        )
        .await;
        call(&h, &mut c, "GET", &one, None).await;
        call(&h, &mut c, "PATCH", &one, Some(patch.clone())).await;
        // A second record (its own e-mail: HubSpot refuses duplicate contact e-mails).
        let mut second = body;
        if let Some(emails) = second.get_mut("email_addresses") {
            *emails = json!(["ada.second@example.com"]);
        }
        let synced = call(
            &h,
            &mut c,
            "POST",
            &format!("{list}?wait=synced"),
            Some(second),
        )
        .await;
        assert_eq!(synced.status, 201, "{}", synced.body);
        let synced_one = format!("{list}/{}", synced.body["id"].as_str().unwrap());
        call(
            &h,
            &mut c,
            "GET",
            &format!("{synced_one}?source=remote"),
            None,
        )
        .await;
        call(&h, &mut c, "GET", &format!("{list}?source=remote"), None).await;
        call(
            &h,
            &mut c,
            "PATCH",
            &format!("{synced_one}?wait=synced"),
            Some(json!({"name": "Renamed"})),
        )
        .await;
        call(&h, &mut c, "DELETE", &one, None).await;
        // Errors.
        call(&h, &mut c, "GET", &format!("{list}?cursor=nope"), None).await;
        call(&h, &mut c, "GET", &format!("{list}?limit=1000"), None).await;
        call(&h, &mut c, "GET", &format!("{list}/999999"), None).await;
        call(
            &h,
            &mut c,
            "PATCH",
            &format!("{list}/999999"),
            Some(json!({})),
        )
        .await;
        call(&h, &mut c, "DELETE", &format!("{list}/999999"), None).await;
        call(&h, &mut c, "POST", &list, Some(json!({"not_a_field": 1}))).await;
        // Not an operation of the document: the answer still has the error shape.
        let r = h.call("PUT", &list, None).await;
        assert_eq!(r.status, 405);
        let doc = c.doc.clone();
        validate(
            &doc,
            &json!({"$ref": "#/components/schemas/Error"}),
            &r.body,
            "PUT",
            &mut c.errors,
        );
    }
    // A write HubSpot refuses.
    let failed = call(
        &h,
        &mut c,
        "POST",
        "/unified/crm/contacts?wait=synced",
        Some(json!({"custom_fields": {"no_such_property": "x"}})),
    )
    .await;
    assert_eq!(failed.status, 422, "{}", failed.body);
    // Auth and scoping.
    let r = h
        .call_as(&h.other_key, PORTAL, "GET", "/unified/crm/contacts", None)
        .await;
    c.check("GET", "/unified/crm/contacts", &r);
    assert_eq!(r.status, 403);
    let r = h
        .call_as("hsk_wrong", PORTAL, "GET", "/unified/crm/deals", None)
        .await;
    assert_eq!(r.status, 401);
    validate(
        &c.doc.clone(),
        &json!({"$ref": "#/components/schemas/Error"}),
        &r.body,
        "401",
        &mut c.errors,
    );
    // A remote read HubSpot rate-limits.
    h.emulator.admin().set_faults(Faults {
        competing_app_share_pct: 100.0,
        ..Faults::default()
    });
    let r = call(
        &h,
        &mut c,
        "GET",
        "/unified/crm/companies?source=remote",
        None,
    )
    .await;
    assert_eq!(r.status, 429, "{}", r.body);

    assert!(
        c.errors.is_empty(),
        "answers that break the document:\n{}",
        c.errors.join("\n")
    );
    // Every documented operation was exercised.
    let doc = c.doc.clone();
    for (path, ops) in doc["paths"].as_object().unwrap() {
        for method in ops.as_object().unwrap().keys() {
            assert!(
                c.exercised.iter().any(|(p, m, _)| p == path && m == method),
                "{method} {path} not exercised"
            );
        }
    }
}

#[tokio::test]
async fn a_wait_that_runs_out_conforms_too() {
    let h = start_with(UnifiedConfig {
        wait_timeout: Duration::from_millis(100),
        wait_poll: Duration::from_millis(20),
        auth_cache_ttl: Duration::ZERO,
        remote_max_wait: Duration::from_secs(1),
    })
    .await;
    let doc = h
        .send(h.http.get(format!("{}/openapi.json", h.base)))
        .await
        .body;
    let mut c = Checker {
        doc,
        exercised: BTreeSet::new(),
        errors: Vec::new(),
    };
    let r = call(
        &h,
        &mut c,
        "POST",
        "/unified/crm/deals?wait=synced",
        Some(json!({"name": "Slow"})),
    )
    .await;
    assert_eq!(r.status, 202);
    assert!(c.errors.is_empty(), "{}", c.errors.join("\n"));
}

#[tokio::test]
async fn the_document_is_served_without_a_key_and_every_ref_resolves() {
    let h = start().await;
    let r = h.send(h.http.get(format!("{}/openapi.json", h.base))).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/json"));
    fn refs(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(m) => {
                if let Some(Value::String(r)) = m.get("$ref") {
                    out.push(r.clone());
                }
                m.values().for_each(|v| refs(v, out));
            }
            Value::Array(a) => a.iter().for_each(|v| refs(v, out)),
            _ => {}
        }
    }
    let mut all = Vec::new();
    refs(&r.body, &mut all);
    assert!(!all.is_empty());
    for reference in all {
        assert!(resolve(&r.body, &reference).is_some(), "{reference}");
    }
    // Filter parameters come from the mapping's declarations.
    let params = r.body["paths"]["/unified/crm/contacts"]["get"]["parameters"].to_string();
    for name in [
        "\"first_name\"",
        "\"email_addresses[contains]\"",
        "\"updated_at[gte]\"",
        "\"email\"",
    ] {
        assert!(params.contains(name), "{name}");
    }
}
