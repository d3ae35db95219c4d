//! Measures the local half of the outbound path on SQLite: the app commits 100,000 updates in
//! transactions of 1,000 rows (each captured by trigger), then hubsync drains the outbox the
//! way the outbound worker does — claim, load the records and their sync state, merge against
//! the base, fingerprint, acknowledge — without the HubSpot round trip.
//!
//! Run: `cargo run --release -p hubsync-store --example capture_bench [records] [claim batch]`

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use hubsync_core::merge::{MergeInput, merge};
use hubsync_core::{FieldMap, Fingerprint, HubspotId, ObjectType, PolicySet, PortalId};
use hubsync_store::{AckOutcome, ApplyOp, InboundUpsert, OutboundAck, SqliteStore, Store};
use serde_json::json;

const PORTAL: PortalId = PortalId(1);
const TX_ROWS: usize = 1_000;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let records: usize = args
        .next()
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(100_000);
    let batch: u32 = args.next().map(|a| a.parse()).transpose()?.unwrap_or(500);

    let dir = tempfile::tempdir()?;
    let url = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("bench.db").display()
    );
    let store = SqliteStore::open(&url).await?;

    // Seed: records synced from HubSpot (not captured), each with a base.
    let started = Instant::now();
    for chunk_start in (0..records).step_by(TX_ROWS) {
        let ops = (chunk_start..(chunk_start + TX_ROWS).min(records))
            .map(|i| {
                let base: FieldMap = [
                    ("first_name".to_owned(), json!(format!("First{i}"))),
                    ("last_name".to_owned(), json!("Bench")),
                    (
                        "email_addresses".to_owned(),
                        json!([format!("c{i}@bench.test")]),
                    ),
                    ("title".to_owned(), json!("Engineer")),
                ]
                .into_iter()
                .collect();
                ApplyOp::Upsert(InboundUpsert {
                    object_type: ObjectType::Contacts,
                    local_id: None,
                    hubspot_id: HubspotId(i as u64 + 1),
                    changes: base
                        .iter()
                        .map(|(k, v)| (k.to_owned(), v.clone()))
                        .collect(),
                    fp_received: Some(Fingerprint::of(&base)),
                    base_ts: BTreeMap::new(),
                    base,
                    remote_updated_at: Some(1),
                })
            })
            .collect();
        store.apply_inbound(PORTAL, ops, &[], None).await?;
    }
    report("inbound apply (seed)", records, started.elapsed());

    // The app updates every row, 1,000 rows per transaction, one UPDATE per row: first with
    // the capture triggers skipped (the cost of the app's writes alone), then captured.
    let pool = store.pool().clone();
    let baseline = app_updates(&pool, records, "Baseline", true).await?;
    report("app updates, capture skipped", records, baseline);
    let cpu_before_capture = cpu_time();
    let capture = app_updates(&pool, records, "Principal", false).await?;
    report("app updates, captured", records, capture);
    assert_eq!(store.queue_depths(PORTAL).await?.outbox, records as u64);

    // Drain: claim, load, merge, fingerprint, acknowledge.
    let policy = PolicySet::default();
    let started = Instant::now();
    let mut load = Duration::ZERO;
    let mut claim = Duration::ZERO;
    let mut ack = Duration::ZERO;
    let mut drained = 0;
    loop {
        let claim_started = Instant::now();
        let claims = store
            .claim_outbox(PORTAL, batch, Duration::from_secs(60), "bench")
            .await?;
        claim += claim_started.elapsed();
        if claims.is_empty() {
            break;
        }
        let load_started = Instant::now();
        let ids: Vec<_> = claims.iter().map(|c| c.local_id).collect();
        let loaded = store
            .get_records_with_sync_states(PORTAL, ObjectType::Contacts, &ids)
            .await?;
        load += load_started.elapsed();
        let mut acks = Vec::with_capacity(claims.len());
        for (claim, (record, state)) in claims.iter().zip(&loaded) {
            let state = state.as_ref().ok_or("a seeded record has no sync state")?;
            let base = state.base.clone().unwrap_or_default();
            let outcome = merge(MergeInput {
                base: Some(&base),
                local: &record.fields,
                local_ts: record.updated_at,
                remote: &base,
                remote_ts: 0,
                remote_field_ts: None,
                remote_scope: None,
                policy: &policy,
            });
            assert_eq!(outcome.remote_changes.len(), 1, "the title changed locally");
            acks.push(OutboundAck {
                range: claim.range(),
                outcome: AckOutcome::Written {
                    hubspot_id: state.hubspot_id.unwrap_or(HubspotId(1)),
                    fp_sent: Fingerprint::of(&outcome.merged),
                    // What the outbound worker acknowledges for an update: the fields it wrote.
                    written_fields: Some(outcome.remote_changes.keys().cloned().collect()),
                    base: outcome.merged,
                    base_ts: BTreeMap::new(),
                    origin: None,
                    remote_updated_at: None,
                },
            });
        }
        drained += acks.len();
        let ack_started = Instant::now();
        store.ack_outbound(PORTAL, acks, None).await?;
        ack += ack_started.elapsed();
    }
    let drain = started.elapsed();
    let cpu = cpu_time().saturating_sub(cpu_before_capture);
    report("claim + load + merge + ack", drained, drain);
    report("  of which claim", drained, claim);
    report("  of which load (records + sync state)", drained, load);
    report("  of which ack", drained, ack);
    report("capture + merge, end to end", records, capture + drain);
    report(
        "capture overhead + merge (hubsync's share)",
        records,
        capture.saturating_sub(baseline) + drain,
    );
    // Wall time depends on what else the machine runs; the process's CPU time (all threads,
    // SQLite's included) is what the work costs.
    report("capture + merge, CPU time", records, cpu);
    store.close().await;
    Ok(())
}

/// Updates every row's title, `TX_ROWS` rows per transaction; with `skip_capture`, inside
/// hubsync's apply guard so that the triggers do not fire.
async fn app_updates(
    pool: &sqlx::SqlitePool,
    records: usize,
    title: &str,
    skip_capture: bool,
) -> Result<Duration, sqlx::Error> {
    let started = Instant::now();
    for chunk_start in (0..records).step_by(TX_ROWS) {
        let mut tx = pool.begin().await?;
        if skip_capture {
            sqlx::query("INSERT INTO _hubsync_apply_guard (id) VALUES (1)")
                .execute(&mut *tx)
                .await?;
        }
        for i in chunk_start..(chunk_start + TX_ROWS).min(records) {
            sqlx::query(
                "UPDATE contacts SET title = $1, updated_at = updated_at + 1 WHERE id = $2",
            )
            .bind(format!("{title} {i}"))
            .bind(i as i64 + 1)
            .execute(&mut *tx)
            .await?;
        }
        if skip_capture {
            sqlx::query("DELETE FROM _hubsync_apply_guard")
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
    }
    Ok(started.elapsed())
}

/// CPU time (user + system) of this process so far, from `/proc/self/stat` (Linux; zero
/// elsewhere).
fn cpu_time() -> Duration {
    const TICKS_PER_SECOND: u64 = 100;
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return Duration::ZERO;
    };
    // Fields after the parenthesised command name; utime and stime are the 12th and 13th.
    let Some((_, rest)) = stat.rsplit_once(')') else {
        return Duration::ZERO;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = [11, 12]
        .iter()
        .filter_map(|&i| fields.get(i).and_then(|f| f.parse::<u64>().ok()))
        .sum();
    Duration::from_millis(ticks * 1000 / TICKS_PER_SECOND)
}

fn report(what: &str, n: usize, took: Duration) {
    let rate = n as f64 / took.as_secs_f64().max(1e-9);
    println!(
        "{what:<42} {n:>8} in {:>8.3} s = {rate:>10.0} records/s",
        took.as_secs_f64()
    );
}
