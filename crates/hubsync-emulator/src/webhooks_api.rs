//! The webhooks management API (`/webhooks/v3/{appId}/settings` and `/subscriptions`), applied
//! to every portal where the app is installed.

use std::sync::Arc;

use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::api::{Req, authenticate, json_resp};
use crate::error::ApiError;
use crate::model::{ObjectKind, iso, now_ms};
use crate::state::{Portal, Shared};
use crate::webhooks::Subscriptions;

fn portals_of(sh: &Shared, app: u64) -> Vec<Arc<Portal>> {
    let mut v: Vec<Arc<Portal>> = sh
        .portals
        .read()
        .values()
        .filter(|p| p.app_id() == app)
        .cloned()
        .collect();
    v.sort_by_key(|p| p.id);
    v
}

fn authorised(sh: &Shared, req: &Req, app: u64) -> Result<(), ApiError> {
    if let Some(key) = req.q("hapikey") {
        return match &sh.developer_api_key {
            Some(k) if k != key => Err(ApiError::unauthenticated()),
            _ => Ok(()),
        };
    }
    let t = authenticate(sh, &req.headers)?;
    if t.app == app {
        Ok(())
    } else {
        Err(ApiError::unauthenticated())
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SettingsIn {
    target_url: String,
    #[serde(default)]
    throttling: Option<Value>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SubIn {
    event_type: String,
    #[serde(default)]
    property_name: Option<String>,
    #[serde(default)]
    active: Option<bool>,
}

#[derive(Debug, Deserialize)]
struct ActiveIn {
    active: bool,
}

/// Handles `/webhooks/v3/{appId}/...`.
pub fn handle(sh: &Shared, req: &Req) -> Result<Response, ApiError> {
    let s: Vec<&str> = req.segs.iter().map(String::as_str).collect();
    let nf = || ApiError::route_not_found(req.method.as_str(), &format!("/{}", s.join("/")));
    let (app, rest) = match s.as_slice() {
        ["webhooks", "v3", app, rest @ ..] => (app.parse::<u64>().map_err(|_| nf())?, rest),
        _ => return Err(nf()),
    };
    authorised(sh, req, app)?;
    let portals = portals_of(sh, app);
    let Some(first) = portals.first().cloned() else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "OBJECT_NOT_FOUND",
            format!("No app with id {app}"),
        ));
    };
    let now = now_ms();
    match (&req.method, rest) {
        (&Method::GET, ["settings"]) => {
            let max = sh.settings.read().webhook_max_in_flight;
            let target = first.cfg.read().webhook_target.clone();
            match target {
                Some(t) => Ok(json_resp(
                    StatusCode::OK,
                    json!({
                        "targetUrl": t, "throttling": {"maxConcurrentRequests": max, "period": "SECONDLY"},
                        "createdAt": iso(now), "updatedAt": iso(now),
                    }),
                )),
                None => Err(ApiError::new(
                    StatusCode::NOT_FOUND,
                    "OBJECT_NOT_FOUND",
                    "No webhook settings found for this app",
                )),
            }
        }
        (&Method::PUT, ["settings"]) => {
            let input: SettingsIn = req.parse()?;
            let max = input
                .throttling
                .as_ref()
                .and_then(|t| t.get("maxConcurrentRequests"))
                .and_then(Value::as_u64)
                .and_then(|m| usize::try_from(m).ok());
            if let Some(m) = max {
                sh.settings.write().webhook_max_in_flight = m.max(1);
            }
            for p in &portals {
                p.cfg.write().webhook_target = Some(input.target_url.clone());
            }
            Ok(json_resp(
                StatusCode::OK,
                json!({
                    "targetUrl": input.target_url,
                    "throttling": {"maxConcurrentRequests": sh.settings.read().webhook_max_in_flight, "period": "SECONDLY"},
                    "createdAt": iso(now), "updatedAt": iso(now),
                }),
            ))
        }
        (&Method::DELETE, ["settings"]) => {
            for p in &portals {
                p.cfg.write().webhook_target = None;
            }
            Ok(StatusCode::NO_CONTENT.into_response())
        }
        (&Method::GET, ["subscriptions"]) => {
            let results: Vec<Value> = first.subs.read().list.iter().map(|x| x.to_json()).collect();
            Ok(json_resp(StatusCode::OK, json!({"results": results})))
        }
        (&Method::POST, ["subscriptions"]) => {
            let input: SubIn = req.parse()?;
            if !Subscriptions::valid_event_type(&input.event_type) {
                return Err(ApiError::validation(format!(
                    "Invalid eventType {}",
                    input.event_type
                )));
            }
            if input.event_type.ends_with(".propertyChange") {
                let Some(pn) = &input.property_name else {
                    return Err(ApiError::validation(
                        "propertyName is required for propertyChange subscriptions",
                    ));
                };
                if pn == "hs_lastmodifieddate" || pn == "num_unique_conversion_events" {
                    return Err(ApiError::validation(format!(
                        "Cannot subscribe to property {pn}"
                    )));
                }
            }
            if first.subs.read().list.len() >= 1000 {
                return Err(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "VALIDATION_ERROR",
                    "Couldn't create another subscription. You've reached the maximum number allowed per application (1000).",
                ));
            }
            let _ = input
                .event_type
                .split('.')
                .next()
                .and_then(ObjectKind::parse);
            let mut created = None;
            for p in &portals {
                let sub = p.subs.write().add(
                    &input.event_type,
                    input.property_name.clone(),
                    input.active.unwrap_or(false),
                    now,
                );
                created.get_or_insert(sub);
            }
            let body = created.map(|s| s.to_json()).unwrap_or(Value::Null);
            Ok(json_resp(StatusCode::CREATED, body))
        }
        (&Method::POST, ["subscriptions", "batch", "update"]) => {
            #[derive(Deserialize)]
            struct Item {
                id: Value,
                active: bool,
            }
            #[derive(Deserialize)]
            struct In {
                inputs: Vec<Item>,
            }
            let input: In = req.parse()?;
            let mut results = Vec::new();
            for i in input.inputs {
                let id = match &i.id {
                    Value::String(s) => s.parse::<u64>().ok(),
                    other => other.as_u64(),
                };
                let Some(id) = id else { continue };
                for p in &portals {
                    let mut subs = p.subs.write();
                    if let Some(x) = subs.list.iter_mut().find(|x| x.id == id) {
                        x.active = i.active;
                        x.updated_at = now;
                        if p.id == first.id {
                            results.push(x.to_json());
                        }
                    }
                }
            }
            Ok(json_resp(
                StatusCode::OK,
                json!({
                    "status": "COMPLETE", "results": results, "startedAt": iso(now), "completedAt": iso(now_ms()),
                }),
            ))
        }
        (m, ["subscriptions", id]) => {
            let id: u64 = id.parse().map_err(|_| nf())?;
            let missing = || {
                ApiError::new(
                    StatusCode::NOT_FOUND,
                    "OBJECT_NOT_FOUND",
                    format!("Subscription {id} not found"),
                )
            };
            match *m {
                Method::GET => {
                    let subs = first.subs.read();
                    let sub = subs.list.iter().find(|x| x.id == id).ok_or_else(missing)?;
                    Ok(json_resp(StatusCode::OK, sub.to_json()))
                }
                Method::PATCH => {
                    let input: ActiveIn = req.parse()?;
                    let mut out = None;
                    for p in &portals {
                        let mut subs = p.subs.write();
                        if let Some(x) = subs.list.iter_mut().find(|x| x.id == id) {
                            x.active = input.active;
                            x.updated_at = now;
                            out.get_or_insert(x.to_json());
                        }
                    }
                    Ok(json_resp(StatusCode::OK, out.ok_or_else(missing)?))
                }
                Method::DELETE => {
                    for p in &portals {
                        p.subs.write().remove(id);
                    }
                    Ok(StatusCode::NO_CONTENT.into_response())
                }
                _ => Err(nf()),
            }
        }
        _ => Err(nf()),
    }
}
