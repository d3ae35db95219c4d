//! `hubsync bench soak`: both sides editing at a steady rate for a fixed time, with the full
//! runner (outbound, inbound and reconcile loops at their production settings) and hubsync's
//! server receiving the emulator's signed webhooks.
//!
//! The emulator is seeded and imported first. Then, for `--seconds`, the app edits a contact's
//! title (plain store write, captured) and a person edits another contact's last name in
//! HubSpot (the emulator's admin API, which sends the webhooks HubSpot would), each at
//! `--rate` edits/s; each edit carries a unique marker. A watcher per direction polls every
//! 10 ms for its markers: app write → visible in HubSpot, HubSpot edit → visible in the
//! app's table. At the end the queues drain and the convergence check compares both sides.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::bail;
use hubsync_core::{Changes, HubspotId, LocalId, ObjectType};
use hubsync_emulator::{DEFAULT_USER_ID, ObjectKind, SeedSpec};
use hubsync_engine::{EngineSettings, converge, counters, reconcile, runner};
use parking_lot::Mutex;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;

use super::report::{CpuUse, Metric, Report, ms, percentile, round};
use super::testbed::{Bed, BedOptions, PAGE, PORTAL};

/// `hubsync bench soak`
#[derive(Debug, Clone, clap::Args)]
pub struct SoakOptions {
    /// How long both sides edit.
    #[arg(long, default_value_t = 30)]
    pub seconds: u64,
    /// Edits per second on each side.
    #[arg(long, default_value_t = 10.0)]
    pub rate: f64,
    /// Contacts in the portal (imported before the edits start).
    #[arg(long, default_value_t = 2_000)]
    pub records: usize,
}

impl Default for SoakOptions {
    fn default() -> Self {
        SoakOptions {
            seconds: 30,
            rate: 10.0,
            records: 2_000,
        }
    }
}

/// An edit waiting to show on the other side.
struct Pending {
    local_id: LocalId,
    hubspot_id: HubspotId,
    marker: String,
    at: Instant,
}

/// One direction's edits in flight and their latencies once seen.
#[derive(Default)]
struct Direction {
    pending: Mutex<Vec<Pending>>,
    busy: Mutex<BTreeSet<i64>>,
    seen: Mutex<Vec<Duration>>,
}

impl Direction {
    fn start(&self, p: Pending) {
        self.busy.lock().insert(p.local_id.0);
        self.pending.lock().push(p);
    }

    fn is_busy(&self, local_id: LocalId) -> bool {
        self.busy.lock().contains(&local_id.0)
    }

    /// Marks the edits `visible` says have arrived.
    fn resolve(&self, visible: impl Fn(&Pending) -> bool) {
        let now = Instant::now();
        let mut pending = self.pending.lock();
        let mut busy = self.busy.lock();
        let mut seen = self.seen.lock();
        pending.retain(|p| {
            if visible(p) {
                seen.push(now - p.at);
                busy.remove(&p.local_id.0);
                false
            } else {
                true
            }
        });
    }

    fn outstanding(&self) -> usize {
        self.pending.lock().len()
    }
}

/// Runs the scenario.
pub async fn run(options: SoakOptions) -> anyhow::Result<Report> {
    if options.rate <= 0.0 || options.records < 4 {
        bail!("--rate must be positive and --records at least 4");
    }
    let command = format!(
        "hubsync bench soak --seconds {} --rate {} --records {}",
        options.seconds, options.rate, options.records
    );
    let mut report = Report::start(
        "soak",
        command,
        json!({"seconds": options.seconds, "rate_per_side": options.rate, "records": options.records}),
    );
    let settings = EngineSettings {
        reconcile_interval: Duration::from_secs(3600),
        ..EngineSettings::default()
    };
    let mut bed = Bed::start(BedOptions {
        settings: Some(settings.clone()),
        ..BedOptions::default()
    })
    .await?;
    let admin = bed.admin();
    admin.seed(
        PORTAL,
        &SeedSpec {
            contacts: options.records,
            duplicate_share: 0.0,
            seed: Some(11),
            ..SeedSpec::default()
        },
    )?;
    bed.serve().await?;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let workers = tokio::spawn(runner::run(bed.engine.clone(), None, stop_rx));

    println!("importing {} contacts with the runner…", options.records);
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let mut done = true;
        for ty in ObjectType::ALL {
            done &= reconcile::import_done(&bed.engine, bed.portal, ty).await?;
        }
        if done {
            break;
        }
        if Instant::now() > deadline {
            bail!("the initial import did not finish within two minutes");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    wait_quiet(&bed).await?;
    let rows = bed
        .engine
        .store
        .list_records(
            bed.portal,
            ObjectType::Contacts,
            None,
            options.records as u32,
            &[],
        )
        .await?;
    let rows: Vec<(LocalId, HubspotId)> = rows
        .iter()
        .filter_map(|r| r.hubspot_id.map(|h| (r.local_id, h)))
        .collect();
    if rows.len() < 4 {
        bail!("only {} contacts were imported", rows.len());
    }
    // The app edits the first half, a person in HubSpot the second: each record changes on one
    // side only, so every marker must arrive unchanged.
    let (app_rows, remote_rows) = rows.split_at(rows.len() / 2);
    let counters_before = bed.engine.store.counters(bed.portal).await?;
    admin.reset_stats();

    let outbound = Arc::new(Direction::default());
    let inbound = Arc::new(Direction::default());
    let (watch_stop_tx, watch_stop_rx) = tokio::sync::watch::channel(false);
    let out_watch = {
        let (d, admin, mut stop) = (Arc::clone(&outbound), bed.admin(), watch_stop_rx.clone());
        tokio::spawn(async move {
            while !*stop.borrow() {
                d.resolve(|p| {
                    admin
                        .get(PORTAL, ObjectKind::Contact, p.hubspot_id.0)
                        .ok()
                        .flatten()
                        .is_some_and(|o| {
                            o["properties"]["jobtitle"].as_str() == Some(p.marker.as_str())
                        })
                });
                tokio::select! { _ = stop.changed() => {}, _ = tokio::time::sleep(Duration::from_millis(10)) => {} }
            }
        })
    };
    let in_watch = {
        let (d, store, portal, mut stop) = (
            Arc::clone(&inbound),
            Arc::clone(&bed.engine.store),
            bed.portal,
            watch_stop_rx.clone(),
        );
        tokio::spawn(async move {
            while !*stop.borrow() {
                let ids: Vec<LocalId> = d.pending.lock().iter().map(|p| p.local_id).collect();
                if !ids.is_empty()
                    && let Ok(records) = store.get_records(portal, ObjectType::Contacts, &ids).await
                {
                    let values: BTreeMap<i64, String> = records
                        .iter()
                        .filter_map(|r| {
                            r.fields
                                .get("last_name")
                                .as_str()
                                .map(|v| (r.local_id.0, v.to_owned()))
                        })
                        .collect();
                    d.resolve(|p| values.get(&p.local_id.0) == Some(&p.marker));
                }
                tokio::select! { _ = stop.changed() => {}, _ = tokio::time::sleep(Duration::from_millis(10)) => {} }
            }
        })
    };

    println!(
        "both sides editing at {} edits/s each for {} s…",
        options.rate, options.seconds
    );
    let mut rng = StdRng::seed_from_u64(17);
    let mut ticker = tokio::time::interval(Duration::from_secs_f64(1.0 / (2.0 * options.rate)));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let cpu_before = CpuUse::now();
    let edits_started = Instant::now();
    let (mut app_edits, mut remote_edits) = (0u64, 0u64);
    let mut k = 0u64;
    while edits_started.elapsed() < Duration::from_secs(options.seconds) {
        ticker.tick().await;
        k += 1;
        let app_side = k.is_multiple_of(2);
        let (pool, direction) = if app_side {
            (app_rows, &outbound)
        } else {
            (remote_rows, &inbound)
        };
        // A record whose last edit has not arrived yet is skipped, so markers never overwrite
        // each other in flight.
        let Some(&(local_id, hubspot_id)) = (0..16)
            .map(|_| &pool[rng.random_range(0..pool.len())])
            .find(|(l, _)| !direction.is_busy(*l))
        else {
            continue;
        };
        let marker = format!("soak-{k}");
        if app_side {
            let changes: Changes = [("title".to_owned(), json!(marker.clone()))]
                .into_iter()
                .collect();
            bed.engine
                .store
                .update_record(bed.portal, ObjectType::Contacts, local_id, &changes)
                .await?;
            outbound.start(Pending {
                local_id,
                hubspot_id,
                marker,
                at: Instant::now(),
            });
            app_edits += 1;
        } else {
            admin.update(
                PORTAL,
                ObjectKind::Contact,
                hubspot_id.0,
                [("lastname", marker.clone())],
                DEFAULT_USER_ID,
            )?;
            inbound.start(Pending {
                local_id,
                hubspot_id,
                marker,
                at: Instant::now(),
            });
            remote_edits += 1;
        }
    }
    let editing = edits_started.elapsed();
    let cpu = CpuUse::now().since(cpu_before);
    println!("waiting for the last edits to arrive…");
    let deadline = Instant::now() + Duration::from_secs(60);
    while (outbound.outstanding() > 0 || inbound.outstanding() > 0) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _ = watch_stop_tx.send(true);
    let _ = out_watch.await;
    let _ = in_watch.await;
    let lost_out = outbound.outstanding();
    let lost_in = inbound.outstanding();
    wait_quiet(&bed).await?;
    let stats = admin.stats().portal(PORTAL);
    let counters_after = bed.engine.store.counters(bed.portal).await?;
    let delta = |name: &str| {
        counters_after.get(name).copied().unwrap_or(0)
            - counters_before.get(name).copied().unwrap_or(0)
    };
    // Checked while the runner still holds the portal (stopping it unregisters the client).
    let convergence = converge::check(&bed.engine, bed.portal).await;
    let _ = stop_tx.send(true);
    let _ = workers.await;
    let convergence = convergence?;

    let mut out_lat = std::mem::take(&mut *outbound.seen.lock());
    let mut in_lat = std::mem::take(&mut *inbound.seen.lock());
    out_lat.sort_unstable();
    in_lat.sort_unstable();
    let ops = &stats.requests_by_operation;
    let sum_ops = |pred: &dyn Fn(&str) -> bool| -> u64 {
        ops.iter().filter(|(op, _)| pred(op)).map(|(_, n)| n).sum()
    };
    let writes = sum_ops(&|op| op.contains(".batch_") && !op.ends_with("batch_read"));
    let reads =
        sum_ops(&|op| op.ends_with("batch_read") || op.ends_with(".get") || op.ends_with(".list"));
    let searches = sum_ops(&|op| op.ends_with(".search"));
    let rate_limited: u64 = stats.rate_limited.values().sum();
    let lower_bound = app_edits.div_ceil(PAGE);

    report.metric(Metric::new("app edits", app_edits as f64, "edits"));
    report.metric(Metric::new("HubSpot edits", remote_edits as f64, "edits"));
    report.metric(Metric::new(
        "edits/s per side, achieved",
        round(app_edits as f64 / editing.as_secs_f64(), 1),
        "edits/s",
    ));
    report.metric(Metric::new(
        "app → HubSpot latency p50",
        ms(percentile(&out_lat, 50.0)),
        "ms",
    ));
    report.metric(Metric::new(
        "app → HubSpot latency p99",
        ms(percentile(&out_lat, 99.0)),
        "ms",
    ));
    report.metric(Metric::new(
        "HubSpot → app latency p50",
        ms(percentile(&in_lat, 50.0)),
        "ms",
    ));
    report.metric(
        Metric::new(
            "HubSpot → app latency p99",
            ms(percentile(&in_lat, 99.0)),
            "ms",
        )
        .target("< 500 ms (issue: from delivery; here from the edit)", |v| {
            v < 500.0
        }),
    );
    report.metric(
        Metric::new(
            "edits never seen on the other side",
            (lost_out + lost_in) as f64,
            "edits",
        )
        .target("0", |v| v == 0.0),
    );
    report.metric(
        Metric::new("HubSpot write calls", writes as f64, "calls").bound(lower_bound as f64),
    );
    report.metric(
        Metric::new(
            "HubSpot reads (batch read, get, list)",
            reads as f64,
            "calls",
        )
        .bound(0.0),
    );
    report.metric(Metric::new("HubSpot searches", searches as f64, "calls"));
    report.metric(
        Metric::new("all HubSpot calls", stats.requests as f64, "calls").bound(lower_bound as f64),
    );
    report.metric(
        Metric::new("429 answers", rate_limited as f64, "answers").target("0", |v| v == 0.0),
    );
    report.metric(
        Metric::new(
            "records written to HubSpot per app edit",
            round(delta(counters::PUSHED) as f64 / app_edits.max(1) as f64, 3),
            "writes/edit",
        )
        .target("≤ 1 (no loop)", |v| v <= 1.0),
    );
    report.metric(
        Metric::new(
            "local applies per HubSpot edit",
            round(
                delta(counters::APPLIED) as f64 / remote_edits.max(1) as f64,
                3,
            ),
            "applies/edit",
        )
        .target("≤ 1 (no loop)", |v| v <= 1.0),
    );
    report.metric(Metric::new(
        "echoes dropped by change source",
        delta(counters::ECHO_CHANGE_SOURCE) as f64,
        "events",
    ));
    report.metric(Metric::new(
        "echoes dropped by origin marker",
        delta(counters::ECHO_ORIGIN) as f64,
        "events",
    ));
    report.metric(Metric::new(
        "echoes dropped by fingerprint/base",
        delta(counters::ECHO_FINGERPRINT) as f64,
        "events",
    ));
    report.metric(Metric::new(
        "webhook events delivered",
        stats.webhook_events_delivered as f64,
        "events",
    ));
    report.cpu("editing (hubsync, emulator and watchers)", cpu, editing);
    let identical = convergence.is_identical();
    report.metric(
        Metric::new(
            "both sides identical at the end",
            if identical { 1.0 } else { 0.0 },
            "bool",
        )
        .target("1", |v| v == 1.0),
    );
    report.note(format!(
        "production worker settings: outbound linger {} ms, idle poll {} ms, inbound batch {}; the watchers poll every 10 ms",
        settings.outbound_linger.as_millis(),
        settings.idle_poll.as_millis(),
        settings.inbound_batch
    ));
    report.note("the write-call bound is pure batching (ceil(app edits / 100)); a steady trickle sent within the linger necessarily takes more, smaller batches — the latency the two latency rows show");
    if !identical {
        for (ty, t) in &convergence.types {
            if !t.is_identical() {
                report.note(format!(
                    "{ty}: {} differ, {} missing locally, {} missing in HubSpot, {} duplicate links",
                    t.differences.len(),
                    t.missing_locally.len(),
                    t.missing_remotely.len(),
                    t.duplicate_links.len()
                ));
            }
        }
    }
    bed.shutdown().await;
    Ok(report.finish())
}

/// Waits until the emulator has delivered its webhooks and both queues are empty.
async fn wait_quiet(bed: &Bed) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut quiet_rounds = 0;
    while quiet_rounds < 3 {
        bed.admin()
            .wait_webhooks_idle(Duration::from_secs(30))
            .await;
        let depths = bed.engine.store.queue_depths(bed.portal).await?;
        if depths.outbox == 0 && depths.inbox == 0 {
            quiet_rounds += 1;
        } else {
            quiet_rounds = 0;
        }
        if Instant::now() > deadline {
            bail!("the queues did not drain within two minutes ({depths:?})");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok(())
}
