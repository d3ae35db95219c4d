//! `hubsync bench outbound`: N changed contacts → HubSpot through the outbound worker.
//!
//! The app inserts N contacts with plain SQL (captured by the triggers into the outbox); once
//! the portal's set-up calls have left the burst window, the outbound worker's step
//! ([`hubsync_engine::outbound::push_once`]) runs until the outbox is empty, against the
//! emulator at the public-app tier (110 requests per real 10-second window), optionally with a
//! competing app holding a share of that budget.
//!
//! Against the rate-limit arithmetic:
//! - write calls vs ceil(N / 100);
//! - the time taken vs the least time those calls need from a fresh budget (the first
//!   window's budget goes at once, then one window per budget's worth);
//! - the sustained rate (records written after the first window, per second) vs the tier's
//!   bound: 110 requests per 10 s × 100 records = 1,100 records/s, or our share of it.

use std::time::{Duration, Instant};

use anyhow::bail;
use hubsync_core::ObjectType;
use hubsync_emulator::Faults;
use hubsync_engine::outbound;
use serde_json::json;

use super::report::{CpuUse, Metric, Report, round};
use super::testbed::{Bed, BedOptions, PAGE, TIER_BURST, WINDOW, least_time};

/// `hubsync bench outbound`
#[derive(Debug, Clone, clap::Args)]
pub struct OutboundOptions {
    /// Changed contacts to push.
    #[arg(long, default_value_t = 10_000)]
    pub records: u64,
    /// Share of the burst budget (0–1) a competing app spends.
    #[arg(long, default_value_t = 0.0)]
    pub competing: f64,
}

impl Default for OutboundOptions {
    fn default() -> Self {
        OutboundOptions {
            records: 10_000,
            competing: 0.0,
        }
    }
}

/// One sample of progress: seconds since the start, records written, calls made so far.
#[derive(Debug, Clone, Copy)]
struct Sample {
    at: f64,
    written: u64,
}

/// Runs the scenario.
pub async fn run(options: OutboundOptions) -> anyhow::Result<Report> {
    if !(0.0..1.0).contains(&options.competing) {
        bail!("--competing is a share of the budget between 0 and 1 (e.g. 0.5)");
    }
    let n = options.records;
    let competing_pct = options.competing * 100.0;
    let mut scenario = format!("outbound-{n}");
    let mut command = format!("hubsync bench outbound --records {n}");
    if competing_pct > 0.0 {
        scenario.push_str(&format!("-competing{competing_pct:.0}"));
        command.push_str(&format!(" --competing {}", options.competing));
    }
    let mut report = Report::start(
        scenario,
        command,
        json!({"records": n, "competing_share": options.competing, "tier": "public_app 110/10s"}),
    );

    let faults = Faults {
        competing_app_share_pct: competing_pct,
        ..Faults::default()
    };
    let bed = Bed::start(BedOptions {
        faults,
        settings: None,
    })
    .await?;
    let admin = bed.admin();
    println!(
        "inserting {n} contacts as the app (SQL, 1,000 rows per transaction, captured by trigger)…"
    );
    let insert_started = Instant::now();
    bed.app_insert_contacts(0, n, 1_000).await?;
    let insert_took = insert_started.elapsed();
    bed.wait_fresh_window().await;
    admin.reset_stats();
    let api = bed.engine.api(bed.portal)?;
    let client_before = api.stats();

    println!("pushing through the outbound worker…");
    let cpu_before = CpuUse::now();
    let started = Instant::now();
    let mut samples = vec![Sample {
        at: 0.0,
        written: 0,
    }];
    let mut written = 0u64;
    let mut dead_lettered = 0u64;
    let mut failures = 0u32;
    loop {
        match outbound::push_once(&bed.engine, bed.portal).await {
            Ok(step) if step.is_idle() => break,
            Ok(step) => {
                failures = 0;
                written += step.written as u64;
                dead_lettered += step.dead_lettered as u64;
                samples.push(Sample {
                    at: started.elapsed().as_secs_f64(),
                    written,
                });
            }
            Err(error) => {
                failures += 1;
                tracing::warn!(%error, "outbound step failed");
                if failures > 20 {
                    bail!("the outbound worker failed 20 times in a row: {error}");
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
    let took = started.elapsed();
    let cpu = CpuUse::now().since(cpu_before);
    let stats = admin.stats().portal(super::testbed::PORTAL);
    let client = api.stats();
    let write_calls = bed.write_calls();
    let requests = stats.requests;
    let rate_limited: u64 = stats.rate_limited.values().sum();
    let client_429 = client.rate_limited - client_before.rate_limited;
    let remote = bed.remote_count(ObjectType::Contacts)?;

    // The arithmetic.
    let lower_bound = n.div_ceil(PAGE);
    let per_window = (f64::from(TIER_BURST) * (1.0 - options.competing)).floor() as u64;
    let bound_rate = per_window as f64 * PAGE as f64 / WINDOW.as_secs_f64();
    let least = least_time(lower_bound, per_window, WINDOW);
    let rate = written as f64 / took.as_secs_f64();

    report.metric(Metric::new("records pushed", written as f64, "records"));
    report.metric(
        Metric::new("write calls", write_calls as f64, "calls")
            .bound(lower_bound as f64)
            .target(format!("≤ {}", lower_bound + 1), |v| {
                v <= (lower_bound + 1) as f64
            }),
    );
    report.metric(
        Metric::new(
            "all HubSpot calls during the push",
            requests as f64,
            "calls",
        )
        .bound(lower_bound as f64),
    );
    let share_429 = 100.0 * client_429.max(rate_limited) as f64 / requests.max(1) as f64;
    if competing_pct > 0.0 {
        report.metric(Metric::new("429 answers", rate_limited as f64, "answers"));
        report.metric(
            Metric::new("429 share of our requests", round(share_429, 2), "%")
                .target("≤ 1%", |v| v <= 1.0),
        );
    } else {
        report.metric(
            Metric::new("429 answers", rate_limited as f64, "answers").target("0", |v| v == 0.0),
        );
    }
    report.metric(
        Metric::new("push time", round(took.as_secs_f64(), 2), "s").bound(least.as_secs_f64()),
    );
    report.metric(
        Metric::new("records/s over the whole push", round(rate, 0), "records/s").bound(bound_rate),
    );
    let label = if competing_pct > 0.0 {
        "share of the rest"
    } else {
        "tier bound"
    };
    let share = if competing_pct > 0.0 { 0.90 } else { 0.95 };
    // Sustained: from the end of the first window (whose budget goes at once) to the end.
    // Records are counted when their step ends, so what was written by the window's end is the
    // count at the last step that ended before it (the steps after it waited for the window to
    // roll, which is the budget's doing, not ours).
    let first_window = WINDOW.as_secs_f64();
    if took.as_secs_f64() >= 2.0 * first_window {
        let at_window = samples
            .iter()
            .rev()
            .find(|s| s.at <= first_window)
            .copied()
            .unwrap_or(samples[0]);
        let sustained = (written - at_window.written) as f64 / (took.as_secs_f64() - first_window);
        report.metric(
            Metric::new(
                format!("sustained records/s (after the first window) vs {label}"),
                round(sustained, 0),
                "records/s",
            )
            .bound(bound_rate)
            .target(
                format!("≥ {:.0}% of {bound_rate:.0}", share * 100.0),
                |v| v >= share * bound_rate,
            ),
        );
    } else if least > Duration::ZERO {
        let efficiency = least.as_secs_f64() / took.as_secs_f64();
        report.metric(
            Metric::new(
                format!("least time / push time ({label})"),
                round(efficiency, 3),
                "ratio",
            )
            .target(format!("≥ {share:.2}"), |v| v >= share),
        );
    } else {
        report.note(format!(
            "all {lower_bound} calls fit in the first window's budget ({per_window} requests), so the rate measures local speed, not the budget; the 100,000-record run measures the sustained rate"
        ));
    }
    report.metric(
        Metric::new("contacts in HubSpot afterwards", remote as f64, "records")
            .target(format!("= {n}"), |v| v == n as f64),
    );
    report.metric(
        Metric::new("dead-lettered", dead_lettered as f64, "records").target("0", |v| v == 0.0),
    );
    report.cpu("push (hubsync and the in-process emulator)", cpu, took);
    report.metric(Metric::new(
        "app insert (set-up, captured)",
        round(n as f64 / insert_took.as_secs_f64(), 0),
        "records/s",
    ));
    report.note(format!(
        "burst budget: {TIER_BURST} requests per real 10 s rolling window{}; our share {per_window}/window = {bound_rate:.0} records/s",
        if competing_pct > 0.0 { format!(", a competing app holds {competing_pct:.0}%") } else { String::new() }
    ));
    report.note("the worker's step is driven in a loop (what the runner's outbound loop does, without its linger); creates go out as batch upserts on hubsync_id");
    bed.shutdown().await;
    Ok(report.finish())
}
