//! `hubsync bench ingest`: the webhook receiver under load.
//!
//! Signed HubSpot-style deliveries (v3 signature over method, URI, body and timestamp) are
//! posted with reqwest over loopback to hubsync's real router and server, which verifies each
//! one and stores it in the SQLite inbox in one transaction before answering 200.
//!
//! 1. Throughput: `--clients` senders, each posting its next delivery as soon as the last was
//!    answered, for `--seconds`: events/s verified and durably stored (counted in the inbox
//!    afterwards).
//! 2. Acknowledgement latency at fixed offered loads (1,000 events/s and `--rate`): deliveries
//!    sent on a timer, not waiting for each other, as HubSpot sends them; p50/p99/max.
//!
//! The senders (JSON, HMAC signing, HTTP client) run in the same process on the same cores as
//! the receiver, so the figures are a floor for a receiver with the machine to itself.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use hubsync_core::PortalId;
use hubsync_engine::{Engine, EngineSettings};
use hubsync_hubspot::webhooks::sign_v3;
use hubsync_hubspot::{ClientConfig, HubspotClient};
use hubsync_mapping::Mappings;
use hubsync_server::{ServerConfig, WebhookConfig};
use hubsync_store::{Portal, PortalAuth, PortalStatus};
use secrecy::SecretString;
use serde_json::json;

use super::report::{CpuUse, Metric, Report, ms, percentile, round};

const PORTAL: PortalId = PortalId(62515);
const SECRET: &str = "bench-ingest-secret";

/// `hubsync bench ingest`
#[derive(Debug, Clone, clap::Args)]
pub struct IngestOptions {
    /// Events per delivery (HubSpot sends up to 100).
    #[arg(long, default_value_t = 100)]
    pub events_per_delivery: u64,
    /// The highest fixed offered load for the latency measurement, in events/s (1,000 events/s
    /// is always measured too).
    #[arg(long, default_value_t = 5_000)]
    pub rate: u64,
    /// Seconds per phase.
    #[arg(long, default_value_t = 5)]
    pub seconds: u64,
    /// Concurrent senders in the throughput phase.
    #[arg(long, default_value_t = 8)]
    pub clients: usize,
}

impl Default for IngestOptions {
    fn default() -> Self {
        IngestOptions {
            events_per_delivery: 100,
            rate: 5_000,
            seconds: 5,
            clients: 8,
        }
    }
}

/// Builds and signs deliveries with unique event ids.
#[derive(Clone)]
struct Sender {
    http: reqwest::Client,
    url: String,
    secret: Arc<SecretString>,
    per_delivery: u64,
    next_id: Arc<AtomicU64>,
}

impl Sender {
    /// Posts the next delivery; returns the time to the answer.
    async fn send(&self) -> anyhow::Result<Duration> {
        let first = self.next_id.fetch_add(self.per_delivery, Ordering::Relaxed);
        let events: Vec<_> = (first..first + self.per_delivery)
            .map(|id| {
                json!({
                    "eventId": id, "subscriptionId": 7562680, "portalId": PORTAL.get(), "appId": 54321,
                    "occurredAt": 1787843156000_i64 + id as i64, "subscriptionType": "contact.propertyChange",
                    "attemptNumber": 0, "objectId": 1000 + id % 50_000, "propertyName": "jobtitle",
                    "propertyValue": format!("Title {id}"), "changeSource": "CRM_UI",
                    "sourceId": "userId:76023669"
                })
            })
            .collect();
        let body = serde_json::to_vec(&events)?;
        let ts = hubsync_store::now_ms();
        let signature = sign_v3(&self.secret, "POST", &self.url, &body, ts);
        let started = Instant::now();
        let response = self
            .http
            .post(&self.url)
            .header("x-hubspot-signature-v3", signature)
            .header("x-hubspot-request-timestamp", ts.to_string())
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await?;
        let took = started.elapsed();
        if response.status() != 200 {
            bail!("delivery answered {}", response.status());
        }
        Ok(took)
    }
}

/// Runs the scenario.
pub async fn run(options: IngestOptions) -> anyhow::Result<Report> {
    if options.events_per_delivery == 0 || options.events_per_delivery > 100 {
        bail!("--events-per-delivery must be 1–100 (HubSpot's maximum)");
    }
    let command = format!(
        "hubsync bench ingest --events-per-delivery {} --rate {} --seconds {} --clients {}",
        options.events_per_delivery, options.rate, options.seconds, options.clients
    );
    let mut report = Report::start(
        "ingest",
        command,
        serde_json::to_value(json!({
            "events_per_delivery": options.events_per_delivery, "rate": options.rate,
            "seconds": options.seconds, "clients": options.clients,
        }))?,
    );

    let dir = tempfile::tempdir()?;
    let db = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("ingest.db").display()
    );
    let store = hubsync_store::connect(&db).await?;
    store
        .upsert_portal(&Portal {
            portal_id: PORTAL,
            name: "ingest".to_owned(),
            app_id: None,
            auth: PortalAuth(json!({})),
            status: PortalStatus::Active,
            status_reason: None,
            config: json!({}),
            created_at: 0,
        })
        .await?;
    let engine = Engine {
        store: store.clone(),
        mappings: Arc::new(Mappings::embedded()?),
        // Never called: the receiver only stores.
        hubspot: HubspotClient::new(ClientConfig::with_base_url("http://127.0.0.1:9"))?,
        settings: Arc::new(EngineSettings::default()),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let config = ServerConfig::new(
        base.clone(),
        Some(WebhookConfig::new(SecretString::from(SECRET))),
    );
    let router = hubsync_server::router(engine, config, None);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(hubsync_server::run(listener, router, async move {
        let _ = stopped.await;
    }));
    let sender = Sender {
        http: reqwest::Client::new(),
        url: format!("{base}{}", hubsync_server::WEBHOOK_PATH),
        secret: Arc::new(SecretString::from(SECRET)),
        per_delivery: options.events_per_delivery,
        next_id: Arc::new(AtomicU64::new(1)),
    };
    sender.send().await.context("the first delivery")?;

    // 1. Throughput.
    println!(
        "throughput: {} senders for {} s…",
        options.clients, options.seconds
    );
    let inbox_before = store.queue_depths(PORTAL).await?.inbox;
    let deadline = Instant::now() + Duration::from_secs(options.seconds);
    let cpu_before = CpuUse::now();
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..options.clients {
        let sender = sender.clone();
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            while Instant::now() < deadline {
                latencies.push(sender.send().await?);
            }
            anyhow::Ok(latencies)
        }));
    }
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await??);
    }
    let cpu = CpuUse::now().since(cpu_before);
    let wall = started.elapsed();
    let elapsed = wall.as_secs_f64();
    let sent = latencies.len() as u64 * options.events_per_delivery;
    let stored = store.queue_depths(PORTAL).await?.inbox - inbox_before;
    latencies.sort_unstable();
    report.metric(
        Metric::new(
            "events/s verified and stored (closed loop)",
            round(stored as f64 / elapsed, 0),
            "events/s",
        )
        .target("≥ 50,000", |v| v >= 50_000.0),
    );
    report.metric(
        Metric::new("events stored / events sent", stored as f64, "events").bound(sent as f64),
    );
    report.cpu("throughput phase (receiver and senders)", cpu, wall);
    report.metric(Metric::new(
        "closed-loop ack p50",
        ms(percentile(&latencies, 50.0)),
        "ms",
    ));
    report.metric(Metric::new(
        "closed-loop ack p99",
        ms(percentile(&latencies, 99.0)),
        "ms",
    ));

    // 2. Latency at fixed offered loads.
    let mut loads = vec![1_000, options.rate];
    loads.dedup();
    for load in loads {
        let per_second = (load as f64 / options.events_per_delivery as f64).max(1.0);
        let interval = Duration::from_secs_f64(1.0 / per_second);
        let total = (per_second * options.seconds as f64).round() as u64;
        println!("latency at {load} events/s ({total} deliveries)…");
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
        let mut inflight = Vec::with_capacity(total as usize);
        for _ in 0..total {
            ticker.tick().await;
            let sender = sender.clone();
            inflight.push(tokio::spawn(async move { sender.send().await }));
        }
        let mut latencies = Vec::with_capacity(inflight.len());
        for task in inflight {
            latencies.push(task.await??);
        }
        latencies.sort_unstable();
        report.metric(Metric::new(
            format!("ack p50 at {load} events/s"),
            ms(percentile(&latencies, 50.0)),
            "ms",
        ));
        let p99 = Metric::new(
            format!("ack p99 at {load} events/s"),
            ms(percentile(&latencies, 99.0)),
            "ms",
        );
        report.metric(if load >= 5_000 {
            p99.target("< 50 ms", |v| v < 50.0)
        } else {
            p99
        });
        report.metric(Metric::new(
            format!("ack max at {load} events/s"),
            ms(percentile(&latencies, 100.0)),
            "ms",
        ));
    }
    report.note(format!(
        "{}-event deliveries, each signed (v3) and posted over loopback; stored = new inbox rows (deduplicated by event identity); senders share the cores with the receiver",
        options.events_per_delivery
    ));
    let _ = stop.send(());
    let _ = server.await;
    store.close().await;
    Ok(report.finish())
}
