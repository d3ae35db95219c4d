//! `hubsync bench emulator`: the HubSpot emulator holding one portal of N contacts (default
//! 1,000,000): the process's memory, and list, get and search page latency over real HTTP.
//!
//! The portal's rate limits are lifted for this scenario, so the figures are the emulator's
//! own serving time, not its (faithful) throttling.

use std::time::{Duration, Instant};

use anyhow::bail;
use hubsync_emulator::{
    Emulator, EmulatorConfig, ObjectKind, PortalConfig, SeedSpec, Settings, Tier,
};
use serde_json::{Value, json};

use super::report::{Metric, Report, ms, percentile, proc_status_mib, round};

const PORTAL: u64 = 1;
const TOKEN: &str = "pat-na1-bench";

/// `hubsync bench emulator`
#[derive(Debug, Clone, clap::Args)]
pub struct EmulatorOptions {
    /// Contacts in the portal.
    #[arg(long, default_value_t = 1_000_000)]
    pub contacts: usize,
    /// Requests timed per query shape.
    #[arg(long, default_value_t = 200)]
    pub runs: usize,
}

impl Default for EmulatorOptions {
    fn default() -> Self {
        EmulatorOptions {
            contacts: 1_000_000,
            runs: 200,
        }
    }
}

/// Runs the scenario.
pub async fn run(options: EmulatorOptions) -> anyhow::Result<Report> {
    let n = options.contacts;
    let command = format!(
        "hubsync bench emulator --contacts {n} --runs {}",
        options.runs
    );
    let mut report = Report::start(
        "emulator",
        command,
        json!({"contacts": n, "runs": options.runs}),
    );
    let mut portal = PortalConfig::new(PORTAL, 1);
    portal.private_app_token = Some(TOKEN.into());
    portal.tier = Tier::Custom {
        burst: u32::MAX,
        daily: u64::MAX,
    };
    let settings = Settings {
        search_per_second: u32::MAX,
        ..Settings::default()
    };
    let config = EmulatorConfig {
        portals: vec![portal],
        settings,
        ..EmulatorConfig::default()
    };
    let emulator =
        Emulator::start(config, tokio::net::TcpListener::bind("127.0.0.1:0").await?).await?;
    let rss_before = proc_status_mib("VmRSS:");
    println!("seeding {n} contacts…");
    let started = Instant::now();
    let seeded = emulator.admin().seed(
        PORTAL,
        &SeedSpec {
            contacts: n,
            duplicate_share: 0.05,
            ..SeedSpec::default()
        },
    )?;
    let seed_time = started.elapsed();
    let rss = proc_status_mib("VmRSS:");
    let Some((first, last)) = seeded.contact_ids else {
        bail!("the seed created no contacts")
    };
    let count = emulator.admin().count(PORTAL, ObjectKind::Contact)?;

    let http = reqwest::Client::new();
    let base = emulator.base_url();
    let span = (last - first).max(1);
    let runs = options.runs.max(1);
    let id = |i: usize| first + (i as u64 * 7919) % span;
    let search_url = format!("{base}/crm/v3/objects/contacts/search");
    let keyset = |i: usize| {
        json!({"limit": 200,
            "sorts": [{"propertyName": "hs_object_id", "direction": "ASCENDING"}],
            "filterGroups": [{"filters": [{"propertyName": "hs_object_id", "operator": "GT", "value": id(i).to_string()}]}]})
    };
    let by_id = |i: usize| json!({"filterGroups": [{"filters": [{"propertyName": "hs_object_id", "operator": "EQ", "value": id(i).to_string()}]}]});
    let recent = json!({"limit": 200,
        "sorts": [{"propertyName": "hs_object_id", "direction": "ASCENDING"}],
        "filterGroups": [{"filters": [{"propertyName": "lastmodifieddate", "operator": "GTE", "value": "4102444800000"}]}]});
    let shapes = vec![
        (
            "list page of 100 (after = spread ids)",
            timed(runs, |i| {
                http.get(format!(
                    "{base}/crm/v3/objects/contacts?limit=100&after={}",
                    id(i)
                ))
            })
            .await?,
        ),
        (
            "get by id",
            timed(runs, |i| {
                http.get(format!("{base}/crm/v3/objects/contacts/{}", id(i)))
            })
            .await?,
        ),
        (
            "search page of 200, keyset on hs_object_id",
            timed(runs, |i| http.post(&search_url).json(&keyset(i))).await?,
        ),
        (
            "search hs_object_id EQ",
            timed(runs, |i| http.post(&search_url).json(&by_id(i))).await?,
        ),
        (
            "search lastmodifieddate window (empty)",
            timed(runs, |_| http.post(&search_url).json(&recent)).await?,
        ),
    ];

    report.metric(
        Metric::new("contacts held", count as f64, "records")
            .target(format!("= {n}"), |v| v as usize == n),
    );
    report.metric(
        Metric::new("process RSS with the portal loaded", rss, "MiB")
            .target("< 1,536 MiB (1.5 GB)", |v| v < 1536.0),
    );
    report.metric(Metric::new("RSS before seeding", rss_before, "MiB"));
    report.metric(Metric::new(
        "seed (bulk loader)",
        round(n as f64 / seed_time.as_secs_f64(), 0),
        "records/s",
    ));
    for (label, samples) in &shapes {
        report.metric(Metric::new(
            format!("{label}: p50"),
            ms(percentile(samples, 50.0)),
            "ms",
        ));
        let p99 = Metric::new(format!("{label}: p99"), ms(percentile(samples, 99.0)), "ms");
        let is_page = label.starts_with("list page") || label.starts_with("search page");
        report.metric(if is_page {
            p99.target("< 5 ms", |v| v < 5.0)
        } else {
            p99
        });
    }
    report.metric(Metric::new(
        "peak RSS (VmHWM)",
        proc_status_mib("VmHWM:"),
        "MiB",
    ));
    report.note("one request at a time over loopback with reqwest (client time included), after 5% as many unrecorded warm-up requests of each shape (10 to 100); rate limits lifted; 5% near-duplicate contacts in the seed");
    emulator.shutdown().await;
    Ok(report.finish())
}

/// Sends `runs` requests one after another, after a few unrecorded warm-up requests of the
/// same shape; returns their sorted latencies (to the whole body).
async fn timed(
    runs: usize,
    mut request: impl FnMut(usize) -> reqwest::RequestBuilder,
) -> anyhow::Result<Vec<Duration>> {
    let warmup = (runs / 20).clamp(10, 100);
    for i in 0..warmup {
        request(runs + i)
            .bearer_auth(TOKEN)
            .send()
            .await?
            .bytes()
            .await?;
    }
    let mut samples = Vec::with_capacity(runs);
    for i in 0..runs {
        let started = Instant::now();
        let response = request(i).bearer_auth(TOKEN).send().await?;
        let status = response.status();
        let body: Value = response.json().await?;
        samples.push(started.elapsed());
        if status != 200 {
            bail!("answered {status}: {body}");
        }
    }
    samples.sort_unstable();
    Ok(samples)
}
