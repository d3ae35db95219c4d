//! `hubsync bench capture`: the local half of the outbound path on SQLite.
//!
//! N contacts are first synced in (as the inbound path writes them: not captured, each with a
//! merge base). Then the app updates every row with plain SQL, `--tx-rows` rows per
//! transaction, each update captured by trigger into the outbox; then hubsync drains the
//! outbox as the outbound worker does — claim, load the records and their sync state, merge
//! against the base, fingerprint, acknowledge with the new base — without the HubSpot round
//! trip (which the outbound scenario measures).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::bail;
use hubsync_core::merge::{MergeInput, merge};
use hubsync_core::{FieldMap, Fingerprint, HubspotId, ObjectType, PolicySet, PortalId};
use hubsync_store::{AckOutcome, ApplyOp, InboundUpsert, OutboundAck, SqliteStore, Store};
use serde_json::json;

use super::report::{CpuUse, Metric, Report, round};

const PORTAL: PortalId = PortalId(1);

/// `hubsync bench capture`
#[derive(Debug, Clone, clap::Args)]
pub struct CaptureOptions {
    /// App updates.
    #[arg(long, default_value_t = 100_000)]
    pub records: u64,
    /// Rows per app transaction.
    #[arg(long, default_value_t = 1_000)]
    pub tx_rows: u64,
    /// Outbox items claimed per drain step.
    #[arg(long, default_value_t = 500)]
    pub claim: u32,
}

impl Default for CaptureOptions {
    fn default() -> Self {
        CaptureOptions {
            records: 100_000,
            tx_rows: 1_000,
            claim: 500,
        }
    }
}

/// The app's side: `n` updates of one row each, `tx_rows` per transaction, each captured into
/// the outbox by the update trigger.
fn app_updates(path: &std::path::Path, n: u64, tx_rows: u64) -> anyhow::Result<()> {
    let mut conn = rusqlite::Connection::open(path)?;
    conn.busy_timeout(Duration::from_secs(5))?;
    let mut i = 0;
    while i < n {
        let end = (i + tx_rows.max(1)).min(n);
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        {
            let mut update = tx.prepare_cached(
                "UPDATE contacts SET title = ?1, updated_at = updated_at + 1 WHERE id = ?2",
            )?;
            for k in i..end {
                update.execute((format!("Principal {k}"), k as i64 + 1))?;
            }
        }
        tx.commit()?;
        i = end;
    }
    Ok(())
}

/// Runs the scenario.
pub async fn run(options: CaptureOptions) -> anyhow::Result<Report> {
    let n = options.records;
    let command = format!(
        "hubsync bench capture --records {n} --tx-rows {} --claim {}",
        options.tx_rows, options.claim
    );
    let mut report = Report::start(
        "capture",
        command,
        json!({"records": n, "tx_rows": options.tx_rows, "claim": options.claim}),
    );
    let dir = tempfile::tempdir()?;
    let url = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("capture.db").display()
    );
    let store = SqliteStore::open(&url).await?;

    // Seed: records synced from HubSpot (not captured), each with a base.
    println!("seeding {n} synced contacts…");
    let started = Instant::now();
    let mut i = 0;
    while i < n {
        let end = (i + 2_000).min(n);
        let ops = (i..end)
            .map(|k| {
                let base: FieldMap = [
                    ("first_name".to_owned(), json!(format!("First{k}"))),
                    ("last_name".to_owned(), json!("Bench")),
                    (
                        "email_addresses".to_owned(),
                        json!([format!("c{k}@bench.test")]),
                    ),
                    ("title".to_owned(), json!("Engineer")),
                ]
                .into_iter()
                .collect();
                ApplyOp::Upsert(InboundUpsert {
                    object_type: ObjectType::Contacts,
                    local_id: None,
                    hubspot_id: HubspotId(k + 1),
                    changes: base
                        .iter()
                        .map(|(f, v)| (f.to_owned(), v.clone()))
                        .collect(),
                    fp_received: Some(Fingerprint::of(&base)),
                    base_ts: BTreeMap::new(),
                    base,
                    remote_updated_at: Some(1),
                })
            })
            .collect();
        store.apply_inbound(PORTAL, ops, &[], None).await?;
        i = end;
    }
    let seed = started.elapsed();

    // Capture: the app updates every row, one UPDATE per row, `tx_rows` per transaction, on
    // a connection of its own (as an app embedding SQLite would: a prepared statement).
    println!("app updates, {} rows per transaction…", options.tx_rows);
    let path = dir.path().join("capture.db");
    let tx_rows = options.tx_rows;
    let cpu_before = CpuUse::now();
    let started = Instant::now();
    tokio::task::spawn_blocking(move || app_updates(&path, n, tx_rows)).await??;
    let capture = started.elapsed();
    let queued = store.queue_depths(PORTAL).await?.outbox;
    if queued != n {
        bail!("expected {n} captured outbox items, found {queued}");
    }

    // Drain: claim, load, merge, fingerprint, acknowledge.
    println!("draining the outbox (claim, load, merge, fingerprint, ack)…");
    let policy = PolicySet::default();
    let started = Instant::now();
    let (mut claim_time, mut load_time, mut merge_time, mut ack_time) = (
        Duration::ZERO,
        Duration::ZERO,
        Duration::ZERO,
        Duration::ZERO,
    );
    let mut drained = 0u64;
    let mut one_sided = 0u64;
    loop {
        let t = Instant::now();
        let claims = store
            .claim_outbox(PORTAL, options.claim, Duration::from_secs(60), "bench")
            .await?;
        claim_time += t.elapsed();
        if claims.is_empty() {
            break;
        }
        let t = Instant::now();
        let ids: Vec<_> = claims.iter().map(|c| c.local_id).collect();
        // One joined read, as the outbound worker loads.
        let loaded = store
            .get_records_with_sync_states(PORTAL, ObjectType::Contacts, &ids)
            .await?;
        load_time += t.elapsed();
        let t = Instant::now();
        let mut acks = Vec::with_capacity(claims.len());
        for (claim, (record, state)) in claims.iter().zip(&loaded) {
            let Some(state) = state else {
                bail!("record {} has no sync state", record.local_id);
            };
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
            one_sided += u64::from(outcome.remote_changes.len() == 1);
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
        merge_time += t.elapsed();
        drained += acks.len() as u64;
        let t = Instant::now();
        store.ack_outbound(PORTAL, acks, None).await?;
        ack_time += t.elapsed();
    }
    let drain = started.elapsed();
    let cpu = CpuUse::now().since(cpu_before);
    let rate = |d: Duration| round(n as f64 / d.as_secs_f64().max(1e-9), 0);

    report.metric(
        Metric::new(
            "capture + merge, end to end",
            rate(capture + drain),
            "records/s",
        )
        .target("≥ 50,000", |v| v >= 50_000.0),
    );
    report.metric(Metric::new(
        "app updates captured (1 UPDATE per row)",
        rate(capture),
        "records/s",
    ));
    report.metric(Metric::new(
        "drain: claim + load + merge + ack",
        round(drained as f64 / drain.as_secs_f64(), 0),
        "records/s",
    ));
    report.metric(Metric::new(
        "  of which claim",
        round(claim_time.as_secs_f64(), 3),
        "s",
    ));
    report.metric(Metric::new(
        "  of which load (records + sync state)",
        round(load_time.as_secs_f64(), 3),
        "s",
    ));
    report.metric(Metric::new(
        "  of which merge + fingerprint",
        round(merge_time.as_secs_f64(), 3),
        "s",
    ));
    report.metric(Metric::new(
        "  of which ack (base, fingerprint, outbox)",
        round(ack_time.as_secs_f64(), 3),
        "s",
    ));
    report.metric(
        Metric::new(
            "records merged with exactly the one local change",
            one_sided as f64,
            "records",
        )
        .target(format!("= {n}"), |v| v == n as f64),
    );
    report.cpu("capture + drain", cpu, capture + drain);
    report.metric(Metric::new(
        "seed (inbound apply, not captured)",
        rate(seed),
        "records/s",
    ));
    report.note("SQLite in WAL mode with synchronous=NORMAL in a temporary folder; the app writes on a connection of its own (rusqlite, one prepared UPDATE per row), hubsync drains on its own connections");
    store.close().await;
    Ok(report.finish())
}
