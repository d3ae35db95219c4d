//! `POST /webhooks/hubspot`: authenticate a HubSpot delivery over its raw bytes, store it in the
//! inbox in one transaction, and only then answer 200.
//!
//! Order of checks, each before the next touches the body: size (413), signature and timestamp
//! (401), JSON shape (400). Events of portals hubsync does not know are dropped with a log line
//! and a counter, and still answered 200 so HubSpot stops retrying them. Unknown subscription
//! types are stored; the inbound worker skips them. A failing database answers 503, so HubSpot
//! retries the whole delivery; nothing is half-stored because the insert is one transaction.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::rejection::BytesRejection;
use axum::extract::{OriginalUri, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use hubsync_core::PortalId;
use hubsync_hubspot::webhooks::{
    SignatureError, SignatureVerifier, SignedRequest, WebhookEvent, parse_delivery,
};
use hubsync_store::{InboxEvent, Store, now_ms};
use parking_lot::Mutex;
use serde_json::{Value, json};

use crate::AppState;

/// The route the receiver is mounted at.
pub const WEBHOOK_PATH: &str = "/webhooks/hubspot";

/// The verifier and the URL prefix HubSpot signs.
pub(crate) struct Receiver {
    pub(crate) verifier: SignatureVerifier,
    pub(crate) public_base: String,
}

/// Handles one delivery.
pub(crate) async fn receive(
    State(state): State<Arc<AppState>>,
    method: Method,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let started = Instant::now();
    let response = handle(&state, &method, &uri, &headers, body).await;
    metrics::histogram!("hubsync_webhook_ack_seconds").record(started.elapsed().as_secs_f64());
    response
}

async fn handle(
    state: &AppState,
    method: &Method,
    uri: &http::Uri,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let Some(receiver) = state.receiver.as_ref() else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let body = match body {
        Ok(body) => body,
        Err(rejection) => {
            let status = rejection.status();
            tracing::warn!(status = status.as_u16(), reason = %rejection.body_text(), "webhook body refused");
            return reject(status, outcome_for(status), &rejection.body_text());
        }
    };

    // Authenticate the exact bytes received, against the URL as HubSpot called it.
    let path_and_query = uri.path_and_query().map_or(uri.path(), |pq| pq.as_str());
    let signed_uri = format!("{}{}", receiver.public_base, path_and_query);
    let request = SignedRequest {
        method: method.as_str(),
        uri: &signed_uri,
        body: &body,
        headers,
    };
    if let Err(error) = receiver.verifier.verify(&request, now_ms()) {
        tracing::warn!(%error, "webhook delivery refused: not signed by HubSpot");
        return reject(
            StatusCode::UNAUTHORIZED,
            unauthorized_outcome(&error),
            "invalid webhook signature",
        );
    }

    let (events, raw) = match parse(&body) {
        Ok(parsed) => parsed,
        Err(reason) => {
            tracing::warn!(%reason, bytes = body.len(), "malformed webhook delivery");
            return reject(
                StatusCode::BAD_REQUEST,
                "malformed",
                "malformed webhook delivery",
            );
        }
    };
    record_portals(&events);

    let known = match state.portals.known(&state.engine.store, &events).await {
        Ok(known) => known,
        Err(error) => {
            tracing::error!(%error, "webhook delivery not stored: cannot read the portals");
            return reject(
                StatusCode::SERVICE_UNAVAILABLE,
                "store_error",
                "store unavailable",
            );
        }
    };
    let mut unknown: BTreeMap<PortalId, u64> = BTreeMap::new();
    let mut inbox = Vec::with_capacity(events.len());
    for (event, payload) in events.into_iter().zip(raw) {
        if known.contains(&event.portal_id) {
            inbox.push(inbox_event(event, payload));
        } else {
            *unknown.entry(event.portal_id).or_default() += 1;
        }
    }
    for (portal, count) in &unknown {
        tracing::warn!(portal = %portal, events = count, "webhook events for a portal hubsync does not know; skipped");
        metrics::counter!("hubsync_webhook_events_total", "outcome" => "unknown_portal")
            .increment(*count);
    }
    let skipped: u64 = unknown.values().sum();

    let stored = if inbox.is_empty() {
        Default::default()
    } else {
        match state.engine.store.insert_inbox(&inbox).await {
            Ok(stored) => stored,
            Err(error) => {
                tracing::error!(%error, events = inbox.len(), "webhook delivery not stored; HubSpot will retry it");
                return reject(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "store_error",
                    "store unavailable",
                );
            }
        }
    };
    metrics::counter!("hubsync_webhook_events_total", "outcome" => "stored")
        .increment(stored.inserted);
    metrics::counter!("hubsync_webhook_events_total", "outcome" => "duplicate")
        .increment(stored.duplicates);
    metrics::counter!("hubsync_webhook_requests_total", "outcome" => "accepted").increment(1);
    tracing::debug!(
        stored = stored.inserted,
        duplicates = stored.duplicates,
        skipped,
        "webhook delivery stored"
    );
    let body =
        json!({ "stored": stored.inserted, "duplicates": stored.duplicates, "skipped": skipped });
    (StatusCode::OK, axum::Json(body)).into_response()
}

/// Parses a delivery twice over the same bytes: typed, for routing and the identity, and as raw
/// JSON objects, which the inbox keeps verbatim for the inbound worker.
fn parse(body: &[u8]) -> Result<(Vec<WebhookEvent>, Vec<Value>), String> {
    let events = parse_delivery(body).map_err(|e| e.to_string())?;
    let raw: Vec<Value> = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    if raw.len() != events.len() {
        return Err("event count mismatch".to_owned());
    }
    Ok((events, raw))
}

fn inbox_event(event: WebhookEvent, payload: Value) -> InboxEvent {
    InboxEvent {
        portal: event.portal_id,
        object_type: event.object_type,
        object_id: event.object_id,
        property_name: event.property_name,
        occurred_at: event.occurred_at,
        // HubSpot's event ids fit in 63 bits; reinterpreting the bits keeps any larger one
        // distinct instead of clamping it.
        event_id: i64::from_ne_bytes(event.event_id.to_ne_bytes()),
        subscription_type: event.subscription_type,
        payload,
    }
}

/// Puts the delivery's portals on the request span, so its log lines name them.
fn record_portals(events: &[WebhookEvent]) {
    let portals: BTreeSet<PortalId> = events.iter().map(|e| e.portal_id).collect();
    let list = portals
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(",");
    if !list.is_empty() {
        tracing::Span::current().record("portal", tracing::field::display(&list));
    }
}

fn reject(status: StatusCode, outcome: &'static str, message: &str) -> Response {
    metrics::counter!("hubsync_webhook_requests_total", "outcome" => outcome).increment(1);
    (status, axum::Json(json!({ "error": message }))).into_response()
}

fn outcome_for(status: StatusCode) -> &'static str {
    match status {
        StatusCode::PAYLOAD_TOO_LARGE => "too_large",
        _ => "bad_body",
    }
}

fn unauthorized_outcome(error: &SignatureError) -> &'static str {
    match error {
        SignatureError::Missing => "unsigned",
        SignatureError::Stale { .. } | SignatureError::BadTimestamp => "stale",
        SignatureError::Mismatch | SignatureError::VersionNotAccepted(_) => "forged",
    }
}

/// Which portals exist, cached: a delivery costs no extra query while all its portals are
/// known and the cache is fresh. An unknown portal triggers a reload, at most every
/// [`PortalDirectory::MISS_RELOAD`], so a newly added portal is seen within that time.
pub(crate) struct PortalDirectory {
    cache: Mutex<Option<(Instant, Arc<BTreeSet<PortalId>>)>>,
}

impl PortalDirectory {
    const MAX_AGE: Duration = Duration::from_secs(5);
    const MISS_RELOAD: Duration = Duration::from_millis(250);

    pub(crate) fn new() -> Self {
        PortalDirectory {
            cache: Mutex::new(None),
        }
    }

    /// The known portals, fresh enough to judge `events`.
    async fn known(
        &self,
        store: &Arc<dyn Store>,
        events: &[WebhookEvent],
    ) -> Result<Arc<BTreeSet<PortalId>>, hubsync_store::StoreError> {
        let cached = self.cache.lock().clone();
        if let Some((loaded, set)) = cached {
            let age = loaded.elapsed();
            let all_known = events.iter().all(|e| set.contains(&e.portal_id));
            if age < Self::MISS_RELOAD || (all_known && age < Self::MAX_AGE) {
                return Ok(set);
            }
        }
        let set: Arc<BTreeSet<PortalId>> = Arc::new(
            store
                .list_portals()
                .await?
                .into_iter()
                .map(|p| p.portal_id)
                .collect(),
        );
        *self.cache.lock() = Some((Instant::now(), set.clone()));
        Ok(set)
    }
}
