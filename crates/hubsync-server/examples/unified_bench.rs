//! Load figure for the unified API: list pages of 100 contacts from the SQLite mirror.
//!
//! Seeds N synced contacts (as the inbound path writes them: uncaptured, with sync state),
//! serves the unified router on loopback, then measures with an in-process client: one
//! connection in sequence (latency without queueing: p50/p99) and C concurrent connections
//! (throughput). With `--serve SECS` it keeps serving afterwards and prints a `wrk` command.
//!
//! ```text
//! cargo run --release -p hubsync-server --example unified_bench -- --contacts 100000
//! cargo run --release -p hubsync-server --example unified_bench -- --contacts 100000 --serve 60
//! # keep the database, then measure it again without seeding
//! cargo run --release -p hubsync-server --example unified_bench -- --contacts 100000 --db /tmp/b.db
//! cargo run --release -p hubsync-server --example unified_bench -- --contacts 100000 --db /tmp/b.db --no-seed
//! ```

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hubsync_core::{Changes, FieldMap, Fingerprint, HubspotId, ObjectType, PortalId};
use hubsync_engine::{Engine, EngineSettings};
use hubsync_hubspot::{ClientConfig, HubspotClient};
use hubsync_mapping::Mappings;
use hubsync_server::unified::{UnifiedConfig, create_api_key, router_with};
use hubsync_store::{ApplyOp, InboundUpsert, Portal, PortalAuth, PortalStatus};
use serde_json::json;

const PORTAL: PortalId = PortalId(62515);

struct Args {
    contacts: u64,
    sequential: usize,
    concurrent: usize,
    connections: usize,
    serve: u64,
    db: Option<String>,
    seed: bool,
}

fn args() -> Args {
    let mut a = Args {
        contacts: 100_000,
        sequential: 2_000,
        concurrent: 20_000,
        connections: 8,
        serve: 0,
        db: None,
        seed: true,
    };
    let mut argv: Vec<String> = std::env::args().skip(1).collect();
    if let Some(i) = argv.iter().position(|a| a == "--no-seed") {
        argv.remove(i);
        a.seed = false;
    }
    for pair in argv.chunks(2) {
        let v = pair.get(1).map(String::as_str).unwrap_or("0");
        match pair[0].as_str() {
            "--contacts" => a.contacts = v.parse().unwrap(),
            "--sequential" => a.sequential = v.parse().unwrap(),
            "--requests" => a.concurrent = v.parse().unwrap(),
            "--connections" => a.connections = v.parse().unwrap(),
            "--serve" => a.serve = v.parse().unwrap(),
            "--db" => a.db = Some(v.to_owned()),
            other => panic!("unknown argument {other}"),
        }
    }
    a
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

#[tokio::main]
async fn main() {
    let args = args();
    let dir = tempfile::tempdir().unwrap();
    let path = args
        .db
        .clone()
        .unwrap_or_else(|| dir.path().join("bench.db").display().to_string());
    let url = format!("sqlite://{path}?mode=rwc");
    let store = hubsync_store::connect(&url).await.unwrap();
    let mappings = Arc::new(Mappings::embedded().unwrap());
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
        .await
        .unwrap();

    let seeding = Instant::now();
    let batch = 2_000u64;
    let mut next = if args.seed { 1u64 } else { u64::MAX };
    while next <= args.contacts {
        let end = (next + batch).min(args.contacts + 1);
        let ops: Vec<ApplyOp> = (next..end)
            .map(|i| {
                let raw = FieldMap::from_unified(&json!({
                    "first_name": format!("First{i}"),
                    "last_name": format!("Last{}", i % 997),
                    "email_addresses": [format!("person{i}@example.com")],
                    "lifecycle_stage": if i % 3 == 0 { "customer" } else { "lead" },
                    "custom_fields": {"arr__c": (i % 100_000).to_string()},
                }));
                let base = mappings.normalize(ObjectType::Contacts, &raw).unwrap();
                let changes: Changes = base
                    .iter()
                    .map(|(k, v)| (k.to_owned(), v.clone()))
                    .collect();
                let base_ts: BTreeMap<String, i64> = base
                    .keys()
                    .map(|k| (k.to_owned(), 1_700_000_000_000))
                    .collect();
                ApplyOp::Upsert(InboundUpsert {
                    object_type: ObjectType::Contacts,
                    local_id: None,
                    hubspot_id: HubspotId(1_000_000 + i),
                    changes,
                    fp_received: Some(Fingerprint::of(&base)),
                    base,
                    base_ts,
                    remote_updated_at: Some(1_700_000_000_000),
                })
            })
            .collect();
        store.apply_inbound(PORTAL, ops, &[], None).await.unwrap();
        next = end;
    }
    if args.seed {
        println!(
            "seeded {} contacts in {:.1?}",
            args.contacts,
            seeding.elapsed()
        );
    }

    let engine = Engine {
        store: Arc::clone(&store),
        mappings,
        hubspot: HubspotClient::new(ClientConfig::with_base_url("http://127.0.0.1:9")).unwrap(),
        settings: Arc::new(EngineSettings::default()),
    };
    let key = create_api_key(store.as_ref(), "bench", &[PORTAL])
        .await
        .unwrap();
    let app = router_with(engine, UnifiedConfig::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let client = reqwest::Client::new();
    // A page of 100 at a spread of positions: cursors after id k·(N/64).
    let paths: Vec<String> = (0..64u64)
        .map(|k| {
            let after = k * (args.contacts / 64).max(1);
            if after == 0 {
                "/unified/crm/contacts?limit=100".to_owned()
            } else {
                let cursor: String = format!("l1:{after}")
                    .bytes()
                    .map(|b| format!("{b:02x}"))
                    .collect();
                format!("/unified/crm/contacts?limit=100&cursor={cursor}")
            }
        })
        .collect();
    let get = |path: &str| {
        client
            .get(format!("{base}{path}"))
            .bearer_auth(&key)
            .header("x-hubsync-portal", PORTAL.to_string())
            .send()
    };
    // Warm up and check the answer.
    let first = get(&paths[1]).await.unwrap();
    assert_eq!(first.status(), 200);
    let body: serde_json::Value = first.json().await.unwrap();
    assert_eq!(body["results"].as_array().unwrap().len(), 100);
    assert_eq!(body["results"][0]["sync"]["status"], "synced");

    let mut latencies = Vec::with_capacity(args.sequential);
    for i in 0..args.sequential {
        let t = Instant::now();
        let r = get(&paths[i % paths.len()]).await.unwrap();
        let _ = r.bytes().await.unwrap();
        latencies.push(t.elapsed());
    }
    latencies.sort_unstable();
    println!(
        "sequential, 1 connection, {} pages of 100: p50 {:.2?}, p99 {:.2?}, max {:.2?}",
        latencies.len(),
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99),
        latencies[latencies.len() - 1]
    );

    let started = Instant::now();
    let per = args.concurrent / args.connections;
    let mut tasks = Vec::new();
    for c in 0..args.connections {
        let client = reqwest::Client::new();
        let base = base.clone();
        let key = key.clone();
        let paths = paths.clone();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::with_capacity(per);
            for i in 0..per {
                let t = Instant::now();
                let r = client
                    .get(format!("{base}{}", paths[(i + c) % paths.len()]))
                    .bearer_auth(&key)
                    .header("x-hubsync-portal", PORTAL.to_string())
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 200);
                let _ = r.bytes().await.unwrap();
                lat.push(t.elapsed());
            }
            lat
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    let elapsed = started.elapsed();
    all.sort_unstable();
    println!(
        "concurrent, {} connections, {} pages of 100 in {:.2?}: {:.0} req/s, p50 {:.2?}, p99 {:.2?}",
        args.connections,
        all.len(),
        elapsed,
        all.len() as f64 / elapsed.as_secs_f64(),
        percentile(&all, 0.5),
        percentile(&all, 0.99)
    );

    if args.serve > 0 {
        let cursor: String = format!("l1:{}", args.contacts / 2)
            .bytes()
            .map(|b| format!("{b:02x}"))
            .collect();
        println!(
            "serving for {}s:\nwrk -t2 -c16 -d20s --latency -H 'authorization: Bearer {key}' -H 'x-hubsync-portal: {PORTAL}' '{base}/unified/crm/contacts?limit=100&cursor={cursor}'",
            args.serve
        );
        tokio::time::sleep(Duration::from_secs(args.serve)).await;
    }
}
