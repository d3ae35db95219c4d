//! App webhooks: subscriptions, turning change events into HubSpot's event JSON, faults at
//! enqueue time, batching (≤ 100 events), at most 10 deliveries in flight per portal, v1 + v3
//! signatures, and retries with randomised backoff compressible by a time scale.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use parking_lot::Mutex;
use rand::Rng;
use rand::SeedableRng;
use rand::rngs::StdRng;
use serde::Serialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::sync::Notify;

use crate::config::{ApiChangeSource, SubscriptionPreset};
use crate::model::{ObjectKind, iso, now_ms};
use crate::portal::{Actor, Change, ChangeEvent, PortalData};
use crate::state::{Portal, Shared};

/// One subscription.
#[derive(Debug, Clone)]
pub struct Subscription {
    /// Id.
    pub id: u64,
    /// `contact.propertyChange` etc.
    pub event_type: String,
    /// Property for `propertyChange`.
    pub property_name: Option<String>,
    /// Active.
    pub active: bool,
    /// Created (ms).
    pub created_at: i64,
    /// Updated (ms).
    pub updated_at: i64,
}

impl Subscription {
    /// `SubscriptionResponse` JSON.
    pub fn to_json(&self) -> Value {
        let mut v = json!({
            "id": self.id.to_string(),
            "eventType": self.event_type,
            "active": self.active,
            "createdAt": iso(self.created_at),
            "updatedAt": iso(self.updated_at),
        });
        if let Some(p) = &self.property_name {
            v["propertyName"] = Value::String(p.clone());
        }
        v
    }
}

/// The subscriptions of a portal's app.
#[derive(Debug, Clone, Default)]
pub struct Subscriptions {
    /// All subscriptions.
    pub list: Vec<Subscription>,
    /// Subscribe new custom properties automatically.
    pub auto_new_properties: bool,
    next_id: u64,
}

const EVENT_TYPES: [&str; 6] = [
    "creation",
    "deletion",
    "propertyChange",
    "associationChange",
    "merge",
    "restore",
];

impl Subscriptions {
    /// The starting set.
    pub fn preset(preset: SubscriptionPreset, data: &PortalData, now: i64) -> Self {
        let mut s = Self {
            list: Vec::new(),
            auto_new_properties: false,
            next_id: 1001,
        };
        if preset == SubscriptionPreset::All {
            s.auto_new_properties = true;
            for kind in ObjectKind::ALL {
                for t in EVENT_TYPES {
                    let et = format!("{}.{t}", kind.singular());
                    if t == "propertyChange" {
                        let names: Vec<String> = data
                            .reg(kind)
                            .all()
                            .filter(|d| !d.archived && d.name != "hs_lastmodifieddate")
                            .map(|d| d.name.clone())
                            .collect();
                        for n in names {
                            s.add(&et, Some(n), true, now);
                        }
                    } else {
                        s.add(&et, None, true, now);
                    }
                }
            }
        }
        s
    }

    /// Adds a subscription; returns it.
    pub fn add(
        &mut self,
        event_type: &str,
        property: Option<String>,
        active: bool,
        now: i64,
    ) -> Subscription {
        let sub = Subscription {
            id: self.next_id,
            event_type: event_type.to_owned(),
            property_name: property,
            active,
            created_at: now,
            updated_at: now,
        };
        self.next_id += 1;
        self.list.push(sub.clone());
        sub
    }

    /// Whether an event type name is valid for this emulator.
    pub fn valid_event_type(t: &str) -> bool {
        let Some((obj, ev)) = t.split_once('.') else {
            return false;
        };
        ObjectKind::parse(obj).is_some() && EVENT_TYPES.contains(&ev)
    }

    fn find(&self, event_type: &str, property: Option<&str>) -> Option<u64> {
        self.list
            .iter()
            .find(|s| {
                s.active
                    && s.event_type == event_type
                    && (property.is_none() || s.property_name.as_deref() == property)
            })
            .map(|s| s.id)
    }

    /// Removes one; returns whether it existed.
    pub fn remove(&mut self, id: u64) -> bool {
        let before = self.list.len();
        self.list.retain(|s| s.id != id);
        before != self.list.len()
    }
}

/// HubSpot's webhook event JSON (field order as in real payloads).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WireEvent {
    event_id: u64,
    subscription_id: u64,
    portal_id: u64,
    app_id: u64,
    occurred_at: i64,
    subscription_type: String,
    attempt_number: u32,
    object_id: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    property_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    property_value: Option<String>,
    change_source: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    source_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    change_flag: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    primary_object_id: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    merged_object_ids: Option<Vec<u64>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    new_object_id: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    number_of_properties_moved: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    association_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    from_object_id: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    to_object_id: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    association_removed: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    is_primary_association: Option<bool>,
}

struct Fresh {
    due: i64,
    seq: u64,
    event: WireEvent,
}

struct Retry {
    due: i64,
    attempt: u32,
    events: Vec<WireEvent>,
}

#[derive(Default)]
struct Queue {
    fresh: Vec<Fresh>,
    retries: Vec<Retry>,
    seq: u64,
    next_event_id: u64,
}

/// The delivery queue of one portal.
pub struct WebhookQueue {
    queue: Mutex<Queue>,
    rng: Mutex<StdRng>,
    /// Retry jitter draws from its own generator so that delivery timing never shifts the
    /// fault sequence.
    jitter: Mutex<StdRng>,
    notify: Notify,
    in_flight: AtomicUsize,
}

impl std::fmt::Debug for WebhookQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookQueue")
            .field("in_flight", &self.in_flight.load(Ordering::Relaxed))
            .finish()
    }
}

impl WebhookQueue {
    /// An empty queue with a seeded generator for faults and jitter.
    pub fn new(rng: StdRng) -> Self {
        Self {
            queue: Mutex::new(Queue {
                next_event_id: 1,
                ..Queue::default()
            }),
            jitter: Mutex::new(StdRng::seed_from_u64(
                rng.clone().random::<u64>() ^ 0x6a09_e667,
            )),
            rng: Mutex::new(rng),
            notify: Notify::new(),
            in_flight: AtomicUsize::new(0),
        }
    }

    /// Events waiting plus deliveries in flight.
    pub fn pending(&self) -> usize {
        let q = self.queue.lock();
        q.fresh.len()
            + q.retries.iter().map(|r| r.events.len()).sum::<usize>()
            + self.in_flight.load(Ordering::SeqCst)
    }

    /// Reseeds the fault generator.
    pub fn reseed(&self, rng: StdRng) {
        *self.jitter.lock() = StdRng::seed_from_u64(rng.clone().random::<u64>() ^ 0x6a09_e667);
        *self.rng.lock() = rng;
    }
}

fn event_name(change: &Change) -> &'static str {
    match change {
        Change::Creation => "creation",
        Change::Deletion => "deletion",
        Change::Restore => "restore",
        Change::Property { .. } => "propertyChange",
        Change::Merge { .. } => "merge",
        Change::Association { .. } => "associationChange",
    }
}

/// Turns change events into wire events, applies webhook faults and queues them.
pub fn emit(shared: &Shared, portal: &Portal, events: Vec<ChangeEvent>) {
    if events.is_empty() {
        return;
    }
    let (target, app_id) = {
        let cfg = portal.cfg.read();
        (cfg.webhook_target.clone(), cfg.app_id)
    };
    if target.is_none() {
        return;
    }
    let api_source = shared.settings.read().api_change_source;
    let faults = shared.faults.read().clone();
    let subs = portal.subs.read();
    let mut wire = Vec::new();
    {
        let mut q = portal.webhooks.queue.lock();
        for ev in events {
            let et = format!("{}.{}", ev.kind.singular(), event_name(&ev.change));
            let prop = match &ev.change {
                Change::Property { name, .. } => Some(name.as_str()),
                _ => None,
            };
            let Some(sub_id) = subs.find(&et, prop) else {
                continue;
            };
            let (change_source, source_id) = match ev.actor {
                Actor::User(u) => ("CRM_UI", Some(format!("userId:{u}"))),
                Actor::App(a) => match api_source {
                    ApiChangeSource::Integration => ("INTEGRATION", Some(a.to_string())),
                    ApiChangeSource::Api => ("API", None),
                },
            };
            let event_id = q.next_event_id;
            q.next_event_id += 1;
            let mut w = WireEvent {
                event_id,
                subscription_id: sub_id,
                portal_id: portal.id,
                app_id,
                occurred_at: ev.occurred_at,
                subscription_type: et,
                attempt_number: 0,
                object_id: ev.object_id,
                property_name: None,
                property_value: None,
                change_source,
                source_id,
                change_flag: None,
                primary_object_id: None,
                merged_object_ids: None,
                new_object_id: None,
                number_of_properties_moved: None,
                association_type: None,
                from_object_id: None,
                to_object_id: None,
                association_removed: None,
                is_primary_association: None,
            };
            match ev.change {
                Change::Creation => w.change_flag = Some("CREATED"),
                Change::Deletion => w.change_flag = Some("DELETED"),
                Change::Restore => {}
                Change::Property { name, value } => {
                    w.property_name = Some(name);
                    w.property_value = Some(value);
                }
                Change::Merge {
                    primary,
                    merged,
                    new_id,
                    moved,
                } => {
                    w.primary_object_id = Some(primary);
                    w.merged_object_ids = Some(merged);
                    w.new_object_id = Some(new_id);
                    w.number_of_properties_moved = Some(moved);
                }
                Change::Association { change, removed } => {
                    w.association_type = Some(format!(
                        "{}_TO_{}",
                        change.ty.from.upper(),
                        change.ty.to.upper()
                    ));
                    w.from_object_id = Some(change.from);
                    w.to_object_id = Some(change.to);
                    w.association_removed = Some(removed);
                    w.is_primary_association = Some(change.ty.primary);
                }
            }
            wire.push(w);
        }
    }
    drop(subs);
    if wire.is_empty() {
        return;
    }
    let now = now_ms();
    let (mut dropped, mut duplicated, mut queued) = (0u64, 0u64, 0u64);
    {
        let mut rng = portal.webhooks.rng.lock();
        let mut q = portal.webhooks.queue.lock();
        let mut roll = |pct: f64| pct > 0.0 && rng.random::<f64>() * 100.0 < pct;
        for w in wire {
            if roll(faults.webhook_drop_pct) {
                dropped += 1;
                continue;
            }
            let dup = roll(faults.webhook_duplicate_pct);
            let mut due = now;
            if roll(faults.webhook_reorder_pct) {
                due += 250;
            }
            if roll(faults.webhook_delay_pct) {
                due += i64::try_from(faults.webhook_delay_ms).unwrap_or(0);
            }
            if dup {
                duplicated += 1;
                let seq = q.seq;
                q.seq += 1;
                q.fresh.push(Fresh {
                    due: due + 50,
                    seq,
                    event: w.clone(),
                });
                queued += 1;
            }
            let seq = q.seq;
            q.seq += 1;
            q.fresh.push(Fresh { due, seq, event: w });
            queued += 1;
        }
    }
    shared.stats.portal(portal.id, |s| {
        s.webhook_events_dropped += dropped;
        s.webhook_events_duplicated += duplicated;
        s.webhook_events_queued += queued;
    });
    portal.webhooks.notify.notify_one();
}

/// Base retry delays in seconds (about 24 h in total), before jitter and time scale.
const RETRY_BASE_SECS: [f64; 10] = [
    30.0, 60.0, 300.0, 900.0, 1800.0, 3600.0, 7200.0, 14400.0, 21600.0, 36000.0,
];

/// The v1 signature: lowercase hex of SHA-256(secret + body).
pub fn sign_v1(secret: &str, body: &[u8]) -> String {
    let mut h = Sha256::new();
    h.update(secret.as_bytes());
    h.update(body);
    hex::encode(h.finalize())
}

/// The v3 signature: base64 of HMAC-SHA256(secret, method + uri + body + timestamp).
pub fn sign_v3(secret: &str, method: &str, uri: &str, body: &[u8], timestamp: i64) -> String {
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.as_bytes()) else {
        return String::new();
    };
    mac.update(method.as_bytes());
    mac.update(uri.as_bytes());
    mac.update(body);
    mac.update(timestamp.to_string().as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// The URI as HubSpot signs it: the percent-escapes its docs list are decoded.
pub fn signed_uri(uri: &str) -> String {
    const ESCAPES: [(&str, &str); 12] = [
        ("%3A", ":"),
        ("%2F", "/"),
        ("%3F", "?"),
        ("%40", "@"),
        ("%21", "!"),
        ("%24", "$"),
        ("%27", "'"),
        ("%28", "("),
        ("%29", ")"),
        ("%2A", "*"),
        ("%2C", ","),
        ("%3B", ";"),
    ];
    let mut out = uri.to_owned();
    for (from, to) in ESCAPES {
        out = out.replace(from, to).replace(&from.to_lowercase(), to);
    }
    out
}

/// Runs a portal's dispatcher until shutdown or removal.
pub async fn dispatcher(shared: Arc<Shared>, portal: Arc<Portal>) {
    let mut shutdown = shared.shutdown.subscribe();
    loop {
        if *shutdown.borrow() || portal.removed.load(Ordering::SeqCst) {
            return;
        }
        let (max_batch, max_in_flight, window) = {
            let s = shared.settings.read();
            (
                s.webhook_max_batch.max(1),
                s.webhook_max_in_flight.max(1),
                i64::try_from(s.webhook_batch_window_ms).unwrap_or(0),
            )
        };
        let now = now_ms();
        let mut next_wake: Option<i64> = None;
        let mut work: Option<(u32, Vec<WireEvent>)> = None;
        if portal.webhooks.in_flight.load(Ordering::SeqCst) < max_in_flight {
            let mut q = portal.webhooks.queue.lock();
            if let Some(pos) = q.retries.iter().position(|r| r.due <= now) {
                let r = q.retries.swap_remove(pos);
                work = Some((r.attempt, r.events));
            } else if !q.fresh.is_empty() {
                q.fresh.sort_by_key(|f| (f.due, f.seq));
                let oldest_due = q.fresh[0].due;
                let ready = q.fresh.iter().take_while(|f| f.due <= now).count();
                if ready >= max_batch || (ready > 0 && oldest_due + window <= now) {
                    let n = ready.min(max_batch);
                    let events = q.fresh.drain(..n).map(|f| f.event).collect();
                    work = Some((0, events));
                } else if ready > 0 {
                    next_wake = Some(oldest_due + window);
                } else {
                    next_wake = Some(oldest_due);
                }
            }
            if work.is_none() {
                for r in &q.retries {
                    next_wake = Some(next_wake.map_or(r.due, |w| w.min(r.due)));
                }
            }
        }
        if let Some((attempt, events)) = work {
            portal.webhooks.in_flight.fetch_add(1, Ordering::SeqCst);
            let (shared2, portal2) = (Arc::clone(&shared), Arc::clone(&portal));
            tokio::spawn(async move {
                deliver(&shared2, &portal2, attempt, events).await;
                portal2.webhooks.in_flight.fetch_sub(1, Ordering::SeqCst);
                portal2.webhooks.notify.notify_one();
            });
            continue;
        }
        let sleep_ms = next_wake.map_or(1000, |w| (w - now).clamp(1, 1000));
        let sleep = Duration::from_millis(u64::try_from(sleep_ms).unwrap_or(1000));
        tokio::select! {
            _ = portal.webhooks.notify.notified() => {}
            _ = tokio::time::sleep(sleep) => {}
            _ = shutdown.changed() => {}
        }
    }
}

async fn deliver(shared: &Shared, portal: &Portal, attempt: u32, mut events: Vec<WireEvent>) {
    let (target, secret) = {
        let cfg = portal.cfg.read();
        (cfg.webhook_target.clone(), cfg.webhook_secret.clone())
    };
    let Some(target) = target else { return };
    for e in &mut events {
        e.attempt_number = attempt;
    }
    let Ok(body) = serde_json::to_vec(&events) else {
        return;
    };
    let ts = now_ms();
    let (timeout_ms, max_retries, scale) = {
        let s = shared.settings.read();
        (
            s.webhook_timeout_ms,
            s.webhook_max_retries,
            s.webhook_time_scale,
        )
    };
    let req = shared
        .http
        .post(&target)
        .header("content-type", "application/json")
        .header(
            "user-agent",
            "HubSpot Connect 2.0 (http://dev.hubspot.com/) (namespace: webhooks-nonsecure)",
        )
        .header("X-HubSpot-Signature", sign_v1(&secret, &body))
        .header("X-HubSpot-Signature-Version", "v1")
        .header(
            "X-HubSpot-Signature-v3",
            sign_v3(&secret, "POST", &signed_uri(&target), &body, ts),
        )
        .header("X-HubSpot-Request-Timestamp", ts.to_string())
        .timeout(Duration::from_millis(timeout_ms))
        .body(body);
    shared
        .stats
        .portal(portal.id, |s| s.webhook_deliveries_attempted += 1);
    let ok = match req.send().await {
        Ok(resp) => resp.status().is_success(),
        Err(_) => false,
    };
    let n = u64::try_from(events.len()).unwrap_or(0);
    if ok {
        shared.stats.portal(portal.id, |s| {
            s.webhook_deliveries_succeeded += 1;
            s.webhook_events_delivered += n;
        });
        tracing::debug!(portal = portal.id, events = n, attempt, "webhook delivered");
        return;
    }
    shared
        .stats
        .portal(portal.id, |s| s.webhook_deliveries_failed += 1);
    if attempt >= max_retries {
        shared
            .stats
            .portal(portal.id, |s| s.webhook_batches_abandoned += 1);
        tracing::warn!(
            portal = portal.id,
            events = n,
            "webhook batch abandoned after retries"
        );
        return;
    }
    let idx = usize::try_from(attempt)
        .unwrap_or(0)
        .min(RETRY_BASE_SECS.len() - 1);
    let jitter: f64 = portal.webhooks.jitter.lock().random_range(0.5..1.5);
    let delay_ms = (RETRY_BASE_SECS[idx] * 1000.0 * jitter * scale.max(0.0)).min(1e12);
    #[allow(clippy::cast_possible_truncation)]
    let due = now_ms() + delay_ms as i64;
    portal.webhooks.queue.lock().retries.push(Retry {
        due,
        attempt: attempt + 1,
        events,
    });
}
