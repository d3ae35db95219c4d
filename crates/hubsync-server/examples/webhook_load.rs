//! Load on the webhook receiver: signed 100-event deliveries over loopback into a SQLite store
//! in a temporary folder, through the real router and `run`.
//!
//! 1. Throughput: `--clients` concurrent senders as fast as they can for `--seconds`.
//! 2. Acknowledgement latency at a fixed rate (`--rate` events/s, HubSpot-style 100-event
//!    deliveries sent on a timer, not waiting for each other): p50, p99, max.
//!
//! ```text
//! cargo run --release -p hubsync-server --example webhook_load -- [--seconds 5] [--clients 8] [--rate 5000]
//! ```

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hubsync_core::PortalId;
use hubsync_engine::{Engine, EngineSettings};
use hubsync_hubspot::webhooks::sign_v3;
use hubsync_hubspot::{ClientConfig, HubspotClient};
use hubsync_mapping::Mappings;
use hubsync_server::{ServerConfig, WebhookConfig};
use hubsync_store::{Portal, PortalAuth, PortalStatus};
use secrecy::SecretString;
use serde_json::json;

const PORTAL: PortalId = PortalId(4242);
const PUBLIC_URL: &str = "https://hubsync.example.test";
const SECRET: &str = "load-test-secret";
const EVENTS_PER_DELIVERY: u64 = 100;

struct Args {
    seconds: u64,
    clients: usize,
    rate: u64,
}

fn args() -> Args {
    let mut args = Args {
        seconds: 5,
        clients: 8,
        rate: 5000,
    };
    let raw: Vec<String> = std::env::args().skip(1).collect();
    for pair in raw.chunks(2) {
        let value = pair.get(1).and_then(|v| v.parse::<u64>().ok());
        match (pair[0].as_str(), value) {
            ("--seconds", Some(v)) => args.seconds = v,
            ("--clients", Some(v)) => args.clients = v as usize,
            ("--rate", Some(v)) => args.rate = v,
            (flag, _) => {
                eprintln!("unknown or incomplete flag `{flag}`");
                std::process::exit(2);
            }
        }
    }
    args
}

/// A signed delivery of 100 events with ids from `first`.
fn delivery(first: u64) -> (Vec<u8>, String, String) {
    let events: Vec<_> = (first..first + EVENTS_PER_DELIVERY)
        .map(|id| {
            json!({
                "eventId": id, "subscriptionId": 7562680, "portalId": PORTAL.get(), "appId": 1,
                "occurredAt": 1787843156000_i64 + id as i64, "subscriptionType": "contact.propertyChange",
                "attemptNumber": 0, "objectId": 1000 + id % 5000, "propertyName": "email",
                "propertyValue": format!("person{id}@example.com"), "changeSource": "CRM_UI",
                "sourceId": "userId:76023669"
            })
        })
        .collect();
    let body = serde_json::to_vec(&events).expect("json");
    let ts = now_ms();
    let signature = sign_v3(
        &SecretString::from(SECRET),
        "POST",
        &format!("{PUBLIC_URL}/webhooks/hubspot"),
        &body,
        ts,
    );
    (body, signature, ts.to_string())
}

fn now_ms() -> i64 {
    hubsync_store::now_ms()
}

async fn send(http: &reqwest::Client, url: &str, first: u64) -> Duration {
    let (body, signature, ts) = delivery(first);
    let started = Instant::now();
    let response = http
        .post(url)
        .header("x-hubspot-signature-v3", signature)
        .header("x-hubspot-request-timestamp", ts)
        .body(body)
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 200, "delivery refused");
    started.elapsed()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

#[tokio::main]
async fn main() {
    let args = args();
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("load.db").display());
    let store = hubsync_store::connect(&url).await.expect("store");
    store
        .upsert_portal(&Portal {
            portal_id: PORTAL,
            name: "load".to_owned(),
            app_id: None,
            auth: PortalAuth(json!({})),
            status: PortalStatus::Active,
            status_reason: None,
            config: json!({}),
            created_at: 0,
        })
        .await
        .expect("portal");
    let engine = Engine {
        store: store.clone(),
        mappings: Arc::new(Mappings::embedded().expect("mappings")),
        hubspot: HubspotClient::new(ClientConfig::with_base_url("http://127.0.0.1:9"))
            .expect("client"),
        settings: Arc::new(EngineSettings::default()),
    };
    let config = ServerConfig::new(
        PUBLIC_URL,
        Some(WebhookConfig::new(SecretString::from(SECRET))),
    );
    let app = hubsync_server::router(engine, config, None);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!(
        "http://{}/webhooks/hubspot",
        listener.local_addr().expect("addr")
    );
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(hubsync_server::run(listener, app, async move {
        let _ = stopped.await;
    }));
    let http = reqwest::Client::new();
    let next_id = Arc::new(AtomicU64::new(1));

    // 0. The store alone: the same deliveries inserted directly, one transaction each.
    let raw: Vec<Vec<hubsync_store::InboxEvent>> = (0..200u64)
        .map(|d| {
            let (body, _, _) = delivery(1_000_000_000 + d * EVENTS_PER_DELIVERY);
            let values: Vec<serde_json::Value> = serde_json::from_slice(&body).expect("json");
            values
                .into_iter()
                .map(|v| hubsync_store::InboxEvent {
                    portal: PORTAL,
                    subscription_type: "contact.propertyChange".to_owned(),
                    object_type: Some(hubsync_core::ObjectType::Contacts),
                    object_id: v["objectId"].as_u64().map(hubsync_core::HubspotId),
                    property_name: Some("email".to_owned()),
                    occurred_at: v["occurredAt"].as_i64().unwrap_or_default(),
                    event_id: v["eventId"].as_i64().unwrap_or_default(),
                    payload: v,
                })
                .collect()
        })
        .collect();
    let started = Instant::now();
    for batch in &raw {
        store.insert_inbox(batch).await.expect("insert");
    }
    let elapsed = started.elapsed().as_secs_f64();
    println!(
        "store alone: {} events in {elapsed:.2} s = {:.0} events/s (insert_inbox, 100 per transaction, sequential)",
        raw.len() as u64 * EVENTS_PER_DELIVERY,
        (raw.len() as u64 * EVENTS_PER_DELIVERY) as f64 / elapsed
    );

    // 1. Throughput, with the deliveries built and signed beforehand so that the senders
    //    spend as little of the shared CPU as possible.
    let pool: Arc<Vec<(Vec<u8>, String, String)>> = Arc::new(
        (0..args.seconds * 800)
            .map(|_| delivery(next_id.fetch_add(EVENTS_PER_DELIVERY, Ordering::Relaxed)))
            .collect(),
    );
    let cursor = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(args.seconds);
    let started = Instant::now();
    let mut senders = Vec::new();
    for _ in 0..args.clients {
        let (http, url, pool, cursor) = (http.clone(), url.clone(), pool.clone(), cursor.clone());
        senders.push(tokio::spawn(async move {
            let mut sent = 0u64;
            while Instant::now() < deadline {
                let i = cursor.fetch_add(1, Ordering::Relaxed) as usize;
                let Some((body, signature, ts)) = pool.get(i) else {
                    break;
                };
                let response = http
                    .post(&url)
                    .header("x-hubspot-signature-v3", signature)
                    .header("x-hubspot-request-timestamp", ts)
                    .body(body.clone())
                    .send()
                    .await
                    .expect("request");
                assert_eq!(response.status(), 200, "delivery refused");
                sent += EVENTS_PER_DELIVERY;
            }
            sent
        }));
    }
    let mut events = 0;
    for sender in senders {
        events += sender.await.expect("sender");
    }
    let elapsed = started.elapsed().as_secs_f64();
    let stored = store.queue_depths(PORTAL).await.expect("depths").inbox;
    println!(
        "throughput: {events} events in {elapsed:.2} s = {:.0} events/s signature-verified and stored ({} clients, {stored} rows in the inbox)",
        events as f64 / elapsed,
        args.clients
    );

    // 2. Latency at a fixed rate.
    let per_second = (args.rate / EVENTS_PER_DELIVERY).max(1);
    let interval = Duration::from_secs_f64(1.0 / per_second as f64);
    let total = per_second * args.seconds;
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut inflight = Vec::with_capacity(total as usize);
    for _ in 0..total {
        ticker.tick().await;
        let (http, url) = (http.clone(), url.clone());
        let first = next_id.fetch_add(EVENTS_PER_DELIVERY, Ordering::Relaxed);
        inflight.push(tokio::spawn(async move { send(&http, &url, first).await }));
    }
    let mut latencies = Vec::with_capacity(inflight.len());
    for task in inflight {
        latencies.push(task.await.expect("sender"));
    }
    latencies.sort_unstable();
    println!(
        "latency at {} events/s ({} deliveries of {EVENTS_PER_DELIVERY}): p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        per_second * EVENTS_PER_DELIVERY,
        latencies.len(),
        percentile(&latencies, 50.0).as_secs_f64() * 1000.0,
        percentile(&latencies, 99.0).as_secs_f64() * 1000.0,
        percentile(&latencies, 100.0).as_secs_f64() * 1000.0,
    );

    let _ = stop.send(());
    let _ = server.await;
}
