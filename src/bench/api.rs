//! `hubsync bench api`: list pages of 100 contacts from the unified API's SQLite mirror.
//!
//! Seeds N synced contacts (as the inbound path writes them: not captured, with sync state),
//! serves the unified API on loopback behind the same router and layers as `hubsync serve`,
//! and measures:
//! - with an in-process reqwest loop: one connection in sequence (latency without queueing)
//!   and C concurrent connections;
//! - with `wrk` (when it is on the `PATH`), a load tool in its own process so that the figures
//!   are the server's: one connection (latency) and C connections (throughput), each for
//!   `--wrk-seconds`.
//!
//! Pages start at cursors spread over the whole table. `--db` keeps the seeded mirror in a file
//! and reuses it on the next run (seeding 1,000,000 contacts takes minutes).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use hubsync_core::{Changes, FieldMap, Fingerprint, HubspotId, ObjectType, PortalId};
use hubsync_engine::{Engine, EngineSettings};
use hubsync_hubspot::{ClientConfig, HubspotClient};
use hubsync_mapping::Mappings;
use hubsync_server::ServerConfig;
use hubsync_server::unified::create_api_key;
use hubsync_store::{ApplyOp, InboundUpsert, Portal, PortalAuth, PortalStatus, Store};
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
    /// Seconds of each `wrk` run (0 skips them; they are skipped too when `wrk` is not
    /// installed).
    #[arg(long, default_value_t = 10)]
    pub wrk_seconds: u64,
    /// `wrk` threads for the throughput run.
    #[arg(long, default_value_t = 1)]
    pub wrk_threads: usize,
    /// Keep the mirror in this SQLite file and reuse it when it already holds `--contacts`
    /// contacts (default: a temporary file, seeded every run).
    #[arg(long)]
    pub db: Option<PathBuf>,
}

impl Default for ApiOptions {
    fn default() -> Self {
        ApiOptions {
            contacts: 1_000_000,
            sequential: 2_000,
            requests: 20_000,
            connections: 8,
            wrk_seconds: 10,
            wrk_threads: 1,
            db: None,
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
        "hubsync bench api --contacts {} --sequential {} --requests {} --connections {} --wrk-seconds {} --wrk-threads {}",
        options.contacts,
        options.sequential,
        options.requests,
        options.connections,
        options.wrk_seconds,
        options.wrk_threads
    );
    let mut report = Report::start(
        "api",
        command,
        serde_json::to_value(json!({
            "contacts": options.contacts, "sequential": options.sequential,
            "requests": options.requests, "connections": options.connections, "page": 100,
            "wrk_seconds": options.wrk_seconds, "wrk_threads": options.wrk_threads,
        }))?,
    );
    // With wrk, the targets are judged on its figures (a load tool in its own process, as the
    // issue asks); without it, on the in-process loop's.
    let external = options.wrk_seconds > 0 && wrk_installed().await;
    let dir = tempfile::tempdir()?;
    let db = options
        .db
        .clone()
        .unwrap_or_else(|| dir.path().join("api.db"));
    let url = format!("sqlite://{}?mode=rwc", db.display());
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
    let held = store
        .count_records(PORTAL, ObjectType::Contacts, &[])
        .await?;
    let seeded = match held {
        0 => Some(seed(store.as_ref(), &mappings, options.contacts).await?),
        n if n == options.contacts => {
            println!("reusing the mirror in {} ({n} contacts)", db.display());
            None
        }
        n => bail!(
            "{} holds {n} contacts, not {}: remove it or pass --contacts {n}",
            db.display(),
            options.contacts
        ),
    };

    let engine = Engine {
        store: Arc::clone(&store),
        mappings,
        hubspot: HubspotClient::new(ClientConfig::with_base_url("http://127.0.0.1:9"))?,
        settings: Arc::new(EngineSettings::default()),
    };
    let key = create_api_key(store.as_ref(), "bench", &[PORTAL]).await?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let app = hubsync_server::router(engine, ServerConfig::new(base.clone(), None), None);
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
    let p99 = Metric::new(
        "page of 100, 1 connection: p99",
        ms(percentile(&latencies, 99.0)),
        "ms",
    );
    report.metric(if external {
        p99
    } else {
        p99.target("< 2 ms", |v| v < 2.0)
    });
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
    let rate = Metric::new(
        format!("pages/s, {} connections", options.connections),
        round(all.len() as f64 / elapsed.as_secs_f64(), 0),
        "requests/s",
    );
    report.metric(if external {
        rate
    } else {
        rate.target("≥ 20,000", |v| v >= 20_000.0)
    });
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
    if let Some(seeded) = seeded {
        report.metric(Metric::new(
            "mirror seeding (inbound apply)",
            round(options.contacts as f64 / seeded.as_secs_f64(), 0),
            "records/s",
        ));
    }
    if external {
        wrk_phases(&options, &base, &key, &paths, dir.path(), &mut report)
            .await
            .context("the wrk runs")?;
    } else if options.wrk_seconds > 0 {
        report.note("wrk is not installed: no external load-tool figures");
    }
    report.note("the reqwest rows: the load loop runs in the same process, sharing the 2 cores with the server and SQLite");
    report.note("the wrk rows: wrk in its own process over loopback, still on the same 2 cores; the server's CPU time is this process's alone");
    report.note("each request authenticates its API key (cached 5 s), reads 100 rows after a keyset cursor with their sync state, and renders them in the unified shape with sync status and RateLimit headers, behind the layers of `hubsync serve`");
    let _ = stop.send(());
    let _ = server.await;
    store.close().await;
    Ok(report.finish())
}

/// Seeds `contacts` synced contacts as the inbound path writes them; returns the time taken.
async fn seed(store: &dyn Store, mappings: &Mappings, contacts: u64) -> anyhow::Result<Duration> {
    println!("seeding {contacts} synced contacts into the mirror…");
    let seeding = Instant::now();
    let mut next = 1u64;
    while next <= contacts {
        let end = (next + 2_000).min(contacts + 1);
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
    Ok(seeding.elapsed())
}

/// What one `wrk` run reported.
#[derive(Debug, Clone, Copy, PartialEq)]
struct WrkRun {
    requests_per_second: f64,
    p50_ms: f64,
    p99_ms: f64,
    non_2xx: u64,
    errors: u64,
}

/// Whether `wrk` can be run.
async fn wrk_installed() -> bool {
    tokio::process::Command::new("wrk")
        .arg("--version")
        .output()
        .await
        .is_ok()
}

/// The external load-tool phases.
async fn wrk_phases(
    options: &ApiOptions,
    base: &str,
    key: &str,
    paths: &[String],
    scratch: &Path,
    report: &mut super::report::ReportBuilder,
) -> anyhow::Result<()> {
    // The script rotates through the same cursors as the reqwest loops. It holds the bench's
    // own throw-away key; it lives in the scenario's temporary folder and is never printed.
    let script = scratch.join("pages.lua");
    let list: Vec<String> = paths.iter().map(|p| format!("\"{p}\"")).collect();
    std::fs::write(
        &script,
        format!(
            "local paths = {{{}}}\nlocal i = 0\n\
             wrk.headers[\"Authorization\"] = \"Bearer {key}\"\n\
             wrk.headers[\"X-Hubsync-Portal\"] = \"{PORTAL}\"\n\
             request = function()\n  i = i + 1\n  \
             return wrk.format(\"GET\", paths[(i % #paths) + 1])\nend\n",
            list.join(", ")
        ),
    )?;
    let seconds = options.wrk_seconds;
    println!("wrk: 1 connection for {seconds} s…");
    let (single, _) = wrk(base, &script, 1, 1, seconds).await?;
    let threads = options.wrk_threads.clamp(1, options.connections.max(1));
    println!(
        "wrk: {} connections ({threads} thread(s)) for {seconds} s…",
        options.connections
    );
    let (loaded, cpu) = wrk(base, &script, threads, options.connections, seconds).await?;
    for run in [&single, &loaded] {
        if run.non_2xx > 0 || run.errors > 0 {
            bail!(
                "wrk saw {} non-2xx answers and {} socket errors",
                run.non_2xx,
                run.errors
            );
        }
    }
    report.metric(Metric::new(
        "wrk, 1 connection: p50",
        round(single.p50_ms, 3),
        "ms",
    ));
    report.metric(
        Metric::new("wrk, 1 connection: p99", round(single.p99_ms, 3), "ms")
            .target("< 2 ms", |v| v < 2.0),
    );
    report.metric(Metric::new(
        "wrk, 1 connection: pages/s",
        round(single.requests_per_second, 0),
        "requests/s",
    ));
    report.metric(
        Metric::new(
            format!("wrk, {} connections: pages/s", options.connections),
            round(loaded.requests_per_second, 0),
            "requests/s",
        )
        .target("≥ 20,000", |v| v >= 20_000.0),
    );
    report.metric(Metric::new(
        format!("wrk, {} connections: p50", options.connections),
        round(loaded.p50_ms, 3),
        "ms",
    ));
    report.metric(Metric::new(
        format!("wrk, {} connections: p99", options.connections),
        round(loaded.p99_ms, 3),
        "ms",
    ));
    let wall = Duration::from_secs(seconds);
    report.cpu(
        &format!("wrk {} connections (server alone)", options.connections),
        cpu,
        wall,
    );
    let served = loaded.requests_per_second * wall.as_secs_f64();
    if served > 0.0 {
        report.metric(Metric::new(
            "server CPU per page under load",
            round(cpu.cpu.as_secs_f64() * 1e6 / served, 0),
            "µs",
        ));
    }
    Ok(())
}

/// Runs `wrk` once; returns its figures and this process's CPU use meanwhile.
async fn wrk(
    base: &str,
    script: &Path,
    threads: usize,
    connections: usize,
    seconds: u64,
) -> anyhow::Result<(WrkRun, CpuUse)> {
    let before = CpuUse::now();
    let output = tokio::process::Command::new("wrk")
        .args(["--latency", "-t", &threads.to_string()])
        .args(["-c", &connections.to_string()])
        .args(["-d", &format!("{seconds}s")])
        .arg("-s")
        .arg(script)
        .arg(base)
        .output()
        .await
        .context("running wrk")?;
    let cpu = CpuUse::now().since(before);
    let text = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        bail!(
            "wrk exited with {}: {}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    parse_wrk(&text)
        .map(|run| (run, cpu))
        .with_context(|| format!("unexpected wrk output:\n{text}"))
}

/// Reads the figures of `wrk --latency` output.
fn parse_wrk(text: &str) -> Option<WrkRun> {
    let mut run = WrkRun {
        requests_per_second: f64::NAN,
        p50_ms: f64::NAN,
        p99_ms: f64::NAN,
        non_2xx: 0,
        errors: 0,
    };
    for line in text.lines().map(str::trim) {
        let mut words = line.split_whitespace();
        match words.next() {
            Some("Requests/sec:") => run.requests_per_second = words.next()?.parse().ok()?,
            Some("50%") => run.p50_ms = wrk_duration_ms(words.next()?)?,
            Some("99%") => run.p99_ms = wrk_duration_ms(words.next()?)?,
            Some("Non-2xx") => run.non_2xx = line.rsplit(' ').next()?.parse().ok()?,
            Some("Socket") => {
                // `Socket errors: connect 0, read 0, write 0, timeout 0`
                run.errors = line
                    .split(',')
                    .filter_map(|part| part.rsplit(' ').next()?.parse::<u64>().ok())
                    .sum();
            }
            _ => {}
        }
    }
    let complete = [run.requests_per_second, run.p50_ms, run.p99_ms]
        .iter()
        .all(|v| v.is_finite());
    complete.then_some(run)
}

/// A `wrk` duration (`635.91us`, `1.61ms`, `2.00s`) in milliseconds.
fn wrk_duration_ms(text: &str) -> Option<f64> {
    let split = text.find(|c: char| c.is_ascii_alphabetic())?;
    let (number, unit) = text.split_at(split);
    let value: f64 = number.parse().ok()?;
    match unit {
        "us" => Some(value / 1000.0),
        "ms" => Some(value),
        "s" => Some(value * 1000.0),
        "m" => Some(value * 60_000.0),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrk_output_is_read() {
        let text = "Running 10s test @ http://127.0.0.1:1\n  1 threads and 8 connections\n\
  Latency Distribution\n     50%  635.91us\n     75%  712.85us\n     90%  820.00us\n     99%    1.61ms\n\
  123 requests in 10.00s, 4.30MB read\n  Socket errors: connect 0, read 2, write 0, timeout 1\n\
  Non-2xx or 3xx responses: 4\nRequests/sec:  12345.67\nTransfer/sec:    430.00KB\n";
        let run = parse_wrk(text).unwrap();
        assert_eq!(run.requests_per_second, 12345.67);
        assert!((run.p50_ms - 0.63591).abs() < 1e-9);
        assert_eq!(run.p99_ms, 1.61);
        assert_eq!(run.errors, 3);
        assert_eq!(run.non_2xx, 4);
        assert!(parse_wrk("nothing").is_none());
    }
}
