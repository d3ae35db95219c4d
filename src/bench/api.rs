//! `hubsync bench api`: list pages of 100 contacts from the unified API's SQLite mirror.
//!
//! Seeds N synced contacts (as the inbound path writes them: not captured, with sync state),
//! serves the unified API on loopback, and measures with an in-process reqwest load loop:
//! one connection in sequence (latency without queueing) and C concurrent connections
//! (throughput and latency under load). Pages start at cursors spread over the whole table.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use hubsync_core::{Changes, FieldMap, Fingerprint, HubspotId, ObjectType, PortalId};
use hubsync_engine::{Engine, EngineSettings};
use hubsync_hubspot::{ClientConfig, HubspotClient};
use hubsync_mapping::Mappings;
use hubsync_server::unified::{UnifiedConfig, create_api_key, router_with};
use hubsync_store::{ApplyOp, InboundUpsert, Portal, PortalAuth, PortalStatus};
use serde_json::json;

use super::report::{CpuUse, Metric, Report, ms, percentile, round};

const PORTAL: PortalId = PortalId(62515);

/// `hubsync bench api`
#[derive(Debug, Clone, clap::Args)]
pub struct ApiOptions {
    /// Contacts in the mirror.
    #[arg(long, default_value_t = 1_000_000)]
    pub contacts: u64,
    /// Pages fetched one after another on one connection.
    #[arg(long, default_value_t = 2_000)]
    pub sequential: usize,
    /// Pages fetched by the concurrent clients together.
    #[arg(long, default_value_t = 20_000)]
    pub requests: usize,
    /// Concurrent clients (one connection each).
    #[arg(long, default_value_t = 8)]
    pub connections: usize,
}

impl Default for ApiOptions {
    fn default() -> Self {
        ApiOptions {
            contacts: 1_000_000,
            sequential: 2_000,
            requests: 20_000,
            connections: 8,
        }
    }
}

/// The unified API's opaque cursor for "after local id `id`" (hex of `l1:<id>`).
fn cursor_after(id: u64) -> String {
    format!("l1:{id}")
        .bytes()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Runs the scenario.
pub async fn run(options: ApiOptions) -> anyhow::Result<Report> {
    let command = format!(
        "hubsync bench api --contacts {} --sequential {} --requests {} --connections {}",
        options.contacts, options.sequential, options.requests, options.connections
    );
    let mut report = Report::start(
        "api",
        command,
        serde_json::to_value(json!({
            "contacts": options.contacts, "sequential": options.sequential,
            "requests": options.requests, "connections": options.connections, "page": 100,
        }))?,
    );
    let dir = tempfile::tempdir()?;
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("api.db").display());
    let store = hubsync_store::connect(&url).await?;
    let mappings = Arc::new(Mappings::embedded()?);
    store
        .upsert_portal(&Portal {
            portal_id: PORTAL,
            name: "bench".into(),
            app_id: None,
            auth: PortalAuth(json!({"kind": "private_app", "token": "unused"})),
            status: PortalStatus::Active,
            status_reason: None,
            config: json!({}),
            created_at: 0,
        })
        .await?;

    println!(
        "seeding {} synced contacts into the mirror…",
        options.contacts
    );
    let seeding = Instant::now();
    let mut next = 1u64;
    while next <= options.contacts {
        let end = (next + 2_000).min(options.contacts + 1);
        let mut ops = Vec::with_capacity((end - next) as usize);
        for i in next..end {
            let raw = FieldMap::from_unified(&json!({
                "first_name": format!("First{i}"),
                "last_name": format!("Last{}", i % 997),
                "email_addresses": [format!("person{i}@example.com")],
                "lifecycle_stage": if i % 3 == 0 { "customer" } else { "lead" },
                "custom_fields": {"arr__c": (i % 100_000).to_string()},
            }));
            let base = mappings.normalize(ObjectType::Contacts, &raw)?;
            let changes: Changes = base
                .iter()
                .map(|(k, v)| (k.to_owned(), v.clone()))
                .collect();
            let base_ts: BTreeMap<String, i64> = base
                .keys()
                .map(|k| (k.to_owned(), 1_700_000_000_000))
                .collect();
            ops.push(ApplyOp::Upsert(InboundUpsert {
                object_type: ObjectType::Contacts,
                local_id: None,
                hubspot_id: HubspotId(1_000_000 + i),
                changes,
                fp_received: Some(Fingerprint::of(&base)),
                base,
                base_ts,
                remote_updated_at: Some(1_700_000_000_000),
            }));
        }
        store.apply_inbound(PORTAL, ops, &[], None).await?;
        next = end;
    }
    let seeded = seeding.elapsed();

    let engine = Engine {
        store: Arc::clone(&store),
        mappings,
        hubspot: HubspotClient::new(ClientConfig::with_base_url("http://127.0.0.1:9"))?,
        settings: Arc::new(EngineSettings::default()),
    };
    let key = create_api_key(store.as_ref(), "bench", &[PORTAL]).await?;
    let app = router_with(engine, UnifiedConfig::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(hubsync_server::run(listener, app, async move {
        let _ = stopped.await;
    }));

    // Pages at 64 positions spread over the table.
    let paths: Arc<Vec<String>> = Arc::new(
        (0..64u64)
            .map(|k| {
                let after = k * (options.contacts / 64).max(1);
                if after == 0 {
                    "/unified/crm/contacts?limit=100".to_owned()
                } else {
                    format!(
                        "/unified/crm/contacts?limit=100&cursor={}",
                        cursor_after(after)
                    )
                }
            })
            .collect(),
    );
    let fetch = |client: reqwest::Client, url: String, key: String| async move {
        let started = Instant::now();
        let response = client
            .get(url)
            .bearer_auth(key)
            .header("x-hubsync-portal", PORTAL.to_string())
            .send()
            .await?;
        let status = response.status();
        let body = response.bytes().await?;
        if status != 200 {
            bail!(
                "list page answered {status}: {}",
                String::from_utf8_lossy(&body)
            );
        }
        anyhow::Ok((started.elapsed(), body.len()))
    };
    // Check one answer's shape.
    let client = reqwest::Client::new();
    let first = client
        .get(format!("{base}{}", paths[1]))
        .bearer_auth(&key)
        .header("x-hubsync-portal", PORTAL.to_string())
        .send()
        .await?;
    if first.status() != 200 {
        bail!("the first list page answered {}", first.status());
    }
    let body: serde_json::Value = first.json().await?;
    let results = body["results"].as_array().map_or(0, Vec::len);
    if results != 100 {
        bail!("a list page held {results} records instead of 100");
    }

    println!(
        "sequential: {} pages on one connection…",
        options.sequential
    );
    let mut latencies = Vec::with_capacity(options.sequential);
    let mut bytes = 0usize;
    for i in 0..options.sequential {
        let (took, len) = fetch(
            client.clone(),
            format!("{base}{}", paths[i % paths.len()]),
            key.clone(),
        )
        .await?;
        latencies.push(took);
        bytes += len;
    }
    latencies.sort_unstable();
    report.metric(Metric::new(
        "page of 100, 1 connection: p50",
        ms(percentile(&latencies, 50.0)),
        "ms",
    ));
    report.metric(
        Metric::new(
            "page of 100, 1 connection: p99",
            ms(percentile(&latencies, 99.0)),
            "ms",
        )
        .target("< 2 ms", |v| v < 2.0),
    );
    let sequential_rate =
        options.sequential as f64 / latencies.iter().sum::<Duration>().as_secs_f64();
    report.metric(Metric::new(
        "pages/s, 1 connection",
        round(sequential_rate, 0),
        "requests/s",
    ));

    println!(
        "concurrent: {} pages over {} connections…",
        options.requests, options.connections
    );
    let per = (options.requests / options.connections.max(1)).max(1);
    let cpu_before = CpuUse::now();
    let started = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..options.connections {
        let (client, base, key, paths) = (
            reqwest::Client::new(),
            base.clone(),
            key.clone(),
            Arc::clone(&paths),
        );
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::with_capacity(per);
            for i in 0..per {
                let url = format!("{base}{}", paths[(i + c * 7) % paths.len()]);
                let (took, _) = fetch(client.clone(), url, key.clone()).await?;
                lat.push(took);
            }
            anyhow::Ok(lat)
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.context("a client task")??);
    }
    let elapsed = started.elapsed();
    let cpu = CpuUse::now().since(cpu_before);
    all.sort_unstable();
    report.metric(
        Metric::new(
            format!("pages/s, {} connections", options.connections),
            round(all.len() as f64 / elapsed.as_secs_f64(), 0),
            "requests/s",
        )
        .target("≥ 20,000", |v| v >= 20_000.0),
    );
    report.metric(Metric::new(
        format!("p50 under load ({} connections)", options.connections),
        ms(percentile(&all, 50.0)),
        "ms",
    ));
    report.metric(Metric::new(
        format!("p99 under load ({} connections)", options.connections),
        ms(percentile(&all, 99.0)),
        "ms",
    ));
    report.cpu("concurrent phase (server and clients)", cpu, elapsed);
    report.metric(Metric::new(
        "page size",
        round(bytes as f64 / options.sequential.max(1) as f64 / 1024.0, 1),
        "KiB",
    ));
    report.metric(Metric::new(
        "mirror seeding (inbound apply)",
        round(options.contacts as f64 / seeded.as_secs_f64(), 0),
        "records/s",
    ));
    report.note("the load loop is reqwest in the same process, sharing the 2 cores with the server and SQLite; wrk or oha on another machine would load the server alone");
    report.note("each request authenticates its API key (hashed lookup, cached 5 s), reads 100 rows after a keyset cursor, and renders them in the unified shape with sync status and RateLimit headers");
    let _ = stop.send(());
    let _ = server.await;
    store.close().await;
    Ok(report.finish())
}
