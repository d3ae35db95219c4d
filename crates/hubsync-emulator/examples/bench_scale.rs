//! Scale benchmark: loads N contacts (default 1,000,000) into one portal, then times list and
//! search pages over real HTTP and reports the process RSS.
//!
//! Run: `cargo run --release -p hubsync-emulator --example bench_scale [-- N]`

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::time::{Duration, Instant};

use hubsync_emulator::{
    Emulator, EmulatorConfig, ObjectKind, PortalConfig, SeedSpec, Settings, Tier,
};
use serde_json::{Value, json};

const TOKEN: &str = "pat-na1-bench";

fn rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

async fn time<F, Fut>(label: &str, runs: usize, mut f: F)
where
    F: FnMut(usize) -> Fut,
    Fut: std::future::Future<Output = Value>,
{
    let mut samples: Vec<Duration> = Vec::with_capacity(runs);
    let mut last = Value::Null;
    for i in 0..runs {
        let t = Instant::now();
        last = f(i).await;
        samples.push(t.elapsed());
    }
    samples.sort();
    let p50 = samples[runs / 2];
    let p95 = samples[(runs * 95 / 100).min(runs - 1)];
    let total = last
        .get("total")
        .map(|t| t.to_string())
        .unwrap_or_else(|| "-".into());
    let n = last["results"].as_array().map_or(0, Vec::len);
    println!(
        "{label:<58} p50 {:>7.3} ms  p95 {:>7.3} ms  (results {n}, total {total})",
        p50.as_secs_f64() * 1e3,
        p95.as_secs_f64() * 1e3
    );
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let mut portal = PortalConfig::new(1, 1);
    portal.private_app_token = Some(TOKEN.into());
    portal.tier = Tier::Custom {
        burst: u32::MAX,
        daily: u64::MAX,
    };
    let settings = Settings {
        search_per_second: u32::MAX,
        ..Settings::default()
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let emu = Emulator::start(
        EmulatorConfig {
            portals: vec![portal],
            settings,
            ..EmulatorConfig::default()
        },
        listener,
    )
    .await
    .unwrap();
    let base_rss = rss_mib();
    let t = Instant::now();
    let report = emu
        .admin()
        .seed(
            1,
            &SeedSpec {
                contacts: n,
                duplicate_share: 0.05,
                ..SeedSpec::default()
            },
        )
        .unwrap();
    let load = t.elapsed();
    let rss = rss_mib();
    println!(
        "seeded {n} contacts in {:.2} s; RSS {rss:.0} MiB (before seeding {base_rss:.0} MiB)",
        load.as_secs_f64()
    );
    let (first, last) = report.contact_ids.unwrap();
    // A recent-changes window: touch 1,000 records.
    let admin = emu.admin();
    let window_start = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
        + 1000;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    for i in 0..1000u64 {
        admin
            .update(
                1,
                ObjectKind::Contact,
                first + i * 997 % (last - first),
                [("jobtitle", format!("T{i}"))],
                1,
            )
            .unwrap();
    }
    let http = reqwest::Client::new();
    let base = emu.base_url();
    let get = |path: String| {
        let http = http.clone();
        let url = format!("{base}{path}");
        async move {
            http.get(url)
                .bearer_auth(TOKEN)
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        }
    };
    let search = |body: Value| {
        let http = http.clone();
        let url = format!("{base}/crm/v3/objects/contacts/search");
        async move {
            http.post(url)
                .bearer_auth(TOKEN)
                .json(&body)
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        }
    };
    let runs = 50;
    let span = last - first;
    time("list page, limit 100, after = random id", runs, |i| {
        get(format!(
            "/crm/v3/objects/contacts?limit=100&after={}",
            first + (i as u64 * 7919) % span
        ))
    })
    .await;
    time("list page, limit 100, 3 explicit properties", runs, |i| {
        get(format!(
            "/crm/v3/objects/contacts?limit=100&properties=email,company,city&after={}",
            first + (i as u64 * 7919) % span
        ))
    })
    .await;
    time("get by id", runs, |i| {
        get(format!(
            "/crm/v3/objects/contacts/{}",
            first + (i as u64 * 7919) % span
        ))
    })
    .await;
    time(
        "search {} (default sort, page 1 of 1M, exact total)",
        runs,
        |_| search(json!({"limit": 200})),
    )
    .await;
    time("search hs_object_id EQ (point lookup)", runs, |i| {
        let id = first + (i as u64 * 7919) % span;
        let body = json!({"filterGroups": [{"filters": [{"propertyName": "hs_object_id", "operator": "EQ", "value": id.to_string()}]}]});
        search(body)
    }).await;
    let sample = search(json!({"limit": 1, "after": "5000", "properties": ["email"]})).await;
    let email = sample["results"][0]["properties"]["email"]
        .as_str()
        .unwrap()
        .to_owned();
    time("search email EQ (unique index, real address)", runs, |_| search(json!({"filterGroups": [{"filters": [{"propertyName": "email", "operator": "EQ", "value": email}]}]}))).await;
    time("keyset: hs_object_id GT x, sort id, limit 200 (full window)", runs, |i| {
        let x = first + (i as u64 * 7919) % span;
        search(json!({"limit": 200, "sorts": [{"propertyName": "hs_object_id", "direction": "ASCENDING"}],
            "filterGroups": [{"filters": [{"propertyName": "hs_object_id", "operator": "GT", "value": x.to_string()},
                {"propertyName": "lastmodifieddate", "operator": "GTE", "value": "0"}]}]}))
    }).await;
    time("keyset: id GT x + lastmodifieddate >= recent (1,000 changed)", runs, |i| {
        let x = if i % 2 == 0 { 0 } else { first + span / 2 };
        search(json!({"limit": 200, "sorts": [{"propertyName": "hs_object_id", "direction": "ASCENDING"}],
            "filterGroups": [{"filters": [{"propertyName": "hs_object_id", "operator": "GT", "value": x.to_string()},
                {"propertyName": "lastmodifieddate", "operator": "GTE", "value": window_start.to_string()}]}]}))
    }).await;
    time("recent changes: lastmodifieddate >= T sorted by it", runs, |_| {
        search(json!({"limit": 200, "sorts": [{"propertyName": "lastmodifieddate", "direction": "ASCENDING"}],
            "filterGroups": [{"filters": [{"propertyName": "lastmodifieddate", "operator": "GTE", "value": window_start.to_string()}]}]}))
    }).await;
    time("full scan: firstname EQ (no index; reported, not promised)", 5, |_| {
        search(json!({"limit": 200, "filterGroups": [{"filters": [{"propertyName": "firstname", "operator": "EQ", "value": "lorelai"}]}]}))
    }).await;
    println!("final RSS {:.0} MiB", rss_mib());
    emu.shutdown().await;
}
