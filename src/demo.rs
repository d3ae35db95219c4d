//! `hubsync demo`: the whole product in one command, with no set-up and no network.
//!
//! It starts the HubSpot emulator in-process and a SQLite store in a temporary folder, seeds a
//! realistic portal and a local app with overlapping records, runs the initial sync, then edits
//! both sides concurrently (some edits conflicting) with webhook faults switched on, repairs the
//! drift, and ends with a report and a convergence check that both sides are identical.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use hubsync_core::{AppId, Changes, FieldMap, ObjectType, PortalId};
use hubsync_emulator::{
    DEFAULT_USER_ID, Emulator, EmulatorConfig, Faults, ObjectKind, PortalConfig, SeedSpec, Tier,
};
use hubsync_engine::{Engine, EngineSettings, converge, counters, reconcile, runner};
use hubsync_hubspot::{ClientConfig, HubspotClient};
use hubsync_mapping::Mappings;
use hubsync_store::{Filter, FilterOp, Portal, PortalAuth, PortalStatus, Store};
use indicatif::{ProgressBar, ProgressStyle};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};

const PORTAL: u64 = 62515;
const APP: u64 = 54321;
const TOKEN: &str = "pat-na1-hubsync-demo";
const WEBHOOK_SECRET: &str = "demo-webhook-secret";

/// What the demo does.
#[derive(Debug, Clone, clap::Args)]
pub struct DemoOptions {
    /// Contacts seeded in HubSpot.
    #[arg(long, default_value_t = 3000)]
    pub contacts: usize,
    /// Companies seeded in HubSpot.
    #[arg(long, default_value_t = 800)]
    pub companies: usize,
    /// Contacts the local app already has (half of them also exist in HubSpot).
    #[arg(long, default_value_t = 600)]
    pub local_contacts: usize,
    /// Edits made on each side while syncing.
    #[arg(long, default_value_t = 300)]
    pub edits: usize,
    /// Seed for the data and every fault.
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
}

/// API calls of one phase against the rate-limit arithmetic's lower bound.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PhaseCalls {
    /// The phase.
    pub phase: &'static str,
    /// Calls made, by operation.
    pub calls: BTreeMap<String, u64>,
    /// Total calls made.
    pub total: u64,
    /// The fewest calls that could do the same work, where it is known.
    pub lower_bound: Option<u64>,
}

/// The figures the demo reports.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DemoReport {
    /// Records per type on each side at the end: (local, HubSpot).
    pub records: BTreeMap<String, (usize, usize)>,
    /// API calls per phase.
    pub phases: Vec<PhaseCalls>,
    /// 429 answers, by policy.
    pub rate_limited: BTreeMap<String, u64>,
    /// Echoes dropped, by path.
    pub echoes: BTreeMap<String, i64>,
    /// Conflicts by winning side.
    pub conflicts: BTreeMap<String, u64>,
    /// Records repaired by reconciliation (local, remote).
    pub drift_repaired: (u64, u64),
    /// Webhook events dropped, duplicated by the fault injector.
    pub webhook_faults: (u64, u64),
    /// Whether both sides ended identical with no duplicates.
    pub identical: bool,
    /// Wall time.
    pub seconds: f64,
}

fn bar(len: u64, message: &'static str) -> ProgressBar {
    let bar = ProgressBar::new(len).with_message(message);
    if let Ok(style) =
        ProgressStyle::with_template("{msg:>22} [{bar:40}] {pos}/{len} {per_sec} eta {eta}")
    {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}

/// Runs the demo and prints its report. Fails when the final check finds a difference.
pub async fn run(opts: DemoOptions) -> anyhow::Result<DemoReport> {
    let started = Instant::now();
    let mut rng = StdRng::seed_from_u64(opts.seed);

    // 1. A local HubSpot with a realistic portal.
    println!(
        "starting the HubSpot emulator and seeding {} contacts, {} companies…",
        opts.contacts, opts.companies
    );
    let mut portal_cfg = PortalConfig::new(PORTAL, APP);
    portal_cfg.private_app_token = Some(TOKEN.to_owned());
    portal_cfg.webhook_secret = WEBHOOK_SECRET.to_owned();
    portal_cfg.tier = Tier::PublicApp;
    let emulator = Emulator::start(
        EmulatorConfig {
            portals: vec![portal_cfg],
            seed: opts.seed,
            ..EmulatorConfig::default()
        },
        tokio::net::TcpListener::bind("127.0.0.1:0").await?,
    )
    .await?;
    let admin = emulator.admin();
    admin.seed(
        PORTAL,
        &SeedSpec {
            contacts: opts.contacts,
            companies: opts.companies,
            deals: opts.companies / 4,
            duplicate_share: 0.0,
            associate: false,
            seed: Some(opts.seed),
        },
    )?;

    // 2. hubsync's store, in a temporary folder, with the app's own records.
    let dir = tempfile::tempdir()?;
    let url = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("hubsync.db").display()
    );
    let store: Arc<dyn Store> = hubsync_store::connect(&url).await?;
    let portal = Portal {
        portal_id: PortalId(PORTAL),
        name: "Demo portal".into(),
        app_id: Some(AppId(APP)),
        auth: PortalAuth(json!({"kind": "private_app", "token": TOKEN})),
        status: PortalStatus::Active,
        status_reason: None,
        config: json!({"burst_tier": 110}),
        created_at: 0,
    };
    store.upsert_portal(&portal).await?;
    let dump = admin.dump(PORTAL)?;
    let remote_emails: Vec<String> = dump["objects"]["contacts"]["live"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|c| c["properties"]["email"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    let overlap = (opts.local_contacts / 2).min(remote_emails.len());
    for i in 0..opts.local_contacts {
        let email = if i < overlap {
            remote_emails[i * remote_emails.len() / overlap.max(1)].clone()
        } else {
            format!("app.user{i}@demo-app.example")
        };
        let fields = FieldMap::from_unified(
            &json!({"first_name": format!("App{i}"), "last_name": "User", "email_addresses": [email], "title": "Customer"}),
        );
        store
            .insert_record(portal.portal_id, ObjectType::Contacts, &fields)
            .await?;
    }
    println!(
        "local app has {} contacts ({overlap} of them also in HubSpot)",
        opts.local_contacts
    );

    // 3. hubsync itself: engine, webhook receiver, workers.
    let hubspot = HubspotClient::new(ClientConfig::with_base_url(emulator.base_url()))?;
    let settings = EngineSettings {
        app_id: Some(AppId(APP)),
        idle_poll: Duration::from_millis(50),
        reconcile_interval: Duration::from_secs(3600),
        ..EngineSettings::default()
    };
    let engine = Engine {
        store: Arc::clone(&store),
        mappings: Arc::new(Mappings::embedded()?),
        hubspot,
        settings: Arc::new(settings),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let server_url = format!("http://{}", listener.local_addr()?);
    let webhook = hubsync_server::WebhookConfig::new(secrecy::SecretString::from(WEBHOOK_SECRET));
    let router = hubsync_server::router(
        engine.clone(),
        hubsync_server::ServerConfig::new(server_url.clone(), Some(webhook)),
        None,
    );
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut server_stop = stop_rx.clone();
    let server = tokio::spawn(hubsync_server::run(listener, router, async move {
        let _ = server_stop.wait_for(|s| *s).await;
    }));
    admin.set_webhook(
        PORTAL,
        Some(format!("{server_url}{}", hubsync_server::WEBHOOK_PATH)),
        None,
    )?;
    let workers = tokio::spawn(runner::run(engine.clone(), None, stop_rx));

    // 4. Initial sync: import HubSpot, link overlapping contacts, push local-only ones.
    let remote_total = (admin.count(PORTAL, ObjectKind::Contact)?
        + admin.count(PORTAL, ObjectKind::Company)?
        + admin.count(PORTAL, ObjectKind::Deal)?) as u64;
    let progress = bar(remote_total, "initial import");
    loop {
        let mut imported = 0;
        for ty in ObjectType::ALL {
            imported += store
                .count_records(
                    portal.portal_id,
                    ty,
                    &[Filter::new("hubspot_id", FilterOp::NotNull, Value::Null)],
                )
                .await?;
        }
        progress.set_position(imported.min(remote_total));
        let mut done = true;
        for ty in ObjectType::ALL {
            done &= reconcile::import_done(&engine, portal.portal_id, ty).await?;
        }
        if done {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    progress.finish();
    wait_quiet(&engine, &admin, "pushing local records").await?;
    let after_import = admin.stats().portal(PORTAL).requests_by_operation;
    // The initial sync's lower bound: one list page per 100 HubSpot records, one write per 100
    // local-only creates and per 100 linked records to update, and hubsync's property set-up
    // (read + create two properties per type).
    let pages: u64 = [opts.contacts, opts.companies, opts.companies / 4]
        .iter()
        .map(|n| (*n as u64).div_ceil(100).max(1))
        .sum();
    let import_bound = pages
        + ((opts.local_contacts - overlap) as u64).div_ceil(100)
        + (overlap as u64).div_ceil(100)
        + 9;
    let mut phases = vec![phase(
        "initial sync",
        &BTreeMap::new(),
        &after_import,
        Some(import_bound),
    )];

    // 5. Both sides edit concurrently, with webhook faults switched on.
    admin.set_faults(Faults {
        webhook_drop_pct: 10.0,
        webhook_duplicate_pct: 5.0,
        webhook_reorder_pct: 10.0,
        ..Faults::default()
    });
    let local_rows = store
        .list_records(
            portal.portal_id,
            ObjectType::Contacts,
            None,
            opts.edits as u32 * 2,
            &[],
        )
        .await?;
    let progress = bar(opts.edits as u64 * 2, "editing both sides");
    let conflicting = opts.edits / 10;
    for i in 0..opts.edits {
        let row = &local_rows[i % local_rows.len()];
        let Some(hubspot_id) = row.hubspot_id else {
            continue;
        };
        // A person edits the record in HubSpot…
        admin.update(
            PORTAL,
            ObjectKind::Contact,
            hubspot_id.0,
            [("jobtitle", format!("remote-edit-{i}"))],
            DEFAULT_USER_ID,
        )?;
        progress.inc(1);
        // …and the app edits another field — or, for some, the same one (a true conflict).
        let field = if i < conflicting {
            "title"
        } else {
            "last_name"
        };
        let changes: Changes = [(field.to_owned(), json!(format!("local-edit-{i}")))]
            .into_iter()
            .collect();
        let target = if i < conflicting {
            row.local_id
        } else {
            local_rows[(i + opts.edits) % local_rows.len()].local_id
        };
        store
            .update_record(portal.portal_id, ObjectType::Contacts, target, &changes)
            .await?;
        progress.inc(1);
        if rng.random_bool(0.1) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    progress.finish();
    wait_quiet(&engine, &admin, "syncing the edits").await?;
    admin.set_faults(Faults::default());
    let after_edits = admin.stats().portal(PORTAL).requests_by_operation;
    // Remote edits arrive with their values (no read needed); local edits to `edits` distinct
    // records need one write per 100.
    phases.push(phase(
        "two-way edits",
        &after_import,
        &after_edits,
        Some((opts.edits as u64).div_ceil(100)),
    ));

    // 6. Repair what the dropped webhooks missed.
    println!("reconciling drift left by dropped webhooks…");
    admin.flush_search(PORTAL)?;
    for ty in ObjectType::ALL {
        reconcile::incremental_pass(&engine, portal.portal_id, ty).await?;
        reconcile::full_pass(&engine, portal.portal_id, ty, false).await?;
    }
    wait_quiet(&engine, &admin, "pushing repairs").await?;
    let after_repair = admin.stats().portal(PORTAL).requests_by_operation;
    phases.push(phase("drift repair", &after_edits, &after_repair, None));

    // 7. Check (while the workers still hold the portal: stopping them disconnects it), stop,
    // report.
    let convergence = converge::check(&engine, portal.portal_id).await?;
    let _ = stop_tx.send(true);
    let _ = workers.await;
    let _ = server.await;
    let report = report(&engine, &admin, &convergence, phases, started).await?;
    print_report(&report, &convergence);
    emulator.shutdown().await;
    if !report.identical {
        bail!("the final check found differences between the two sides");
    }
    Ok(report)
}

/// Waits until the emulator has delivered its webhooks and both queues are empty.
async fn wait_quiet(
    engine: &Engine,
    admin: &hubsync_emulator::Admin,
    what: &'static str,
) -> anyhow::Result<()> {
    let spinner = ProgressBar::new_spinner().with_message(what);
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut quiet_rounds = 0;
    while quiet_rounds < 3 {
        spinner.tick();
        admin.wait_webhooks_idle(Duration::from_secs(30)).await;
        let depths = engine.store.queue_depths(PortalId(PORTAL)).await?;
        if depths.outbox == 0 && depths.inbox == 0 {
            quiet_rounds += 1;
        } else {
            quiet_rounds = 0;
        }
        if Instant::now() > deadline {
            bail!("{what}: queues did not drain within two minutes ({depths:?})");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    spinner.finish_and_clear();
    Ok(())
}

fn phase(
    name: &'static str,
    before: &BTreeMap<String, u64>,
    after: &BTreeMap<String, u64>,
    lower_bound: Option<u64>,
) -> PhaseCalls {
    let calls: BTreeMap<String, u64> = after
        .iter()
        .map(|(op, n)| (op.clone(), n - before.get(op).copied().unwrap_or(0)))
        .filter(|(_, n)| *n > 0)
        .collect();
    PhaseCalls {
        phase: name,
        total: calls.values().sum(),
        calls,
        lower_bound,
    }
}

async fn report(
    engine: &Engine,
    admin: &hubsync_emulator::Admin,
    convergence: &converge::Convergence,
    phases: Vec<PhaseCalls>,
    started: Instant,
) -> anyhow::Result<DemoReport> {
    let portal = PortalId(PORTAL);
    let stats = admin.stats().portal(PORTAL);
    let counters = engine.store.counters(portal).await.context("counters")?;
    let get = |name: &str| counters.get(name).copied().unwrap_or(0);
    let mut conflicts: BTreeMap<String, u64> = BTreeMap::new();
    let mut before = None;
    loop {
        let page = engine.store.list_conflicts(portal, before, 500).await?;
        let Some(last) = page.last() else { break };
        before = Some(last.id);
        for c in &page {
            *conflicts
                .entry(format!(
                    "{:?} wins ({:?})",
                    c.conflict.winner, c.conflict.policy
                ))
                .or_default() += 1;
        }
    }
    let records = convergence
        .types
        .iter()
        .map(|(ty, t)| (ty.plural().to_owned(), (t.local_live, t.remote_live)))
        .collect();
    Ok(DemoReport {
        records,
        phases,
        rate_limited: stats.rate_limited.clone(),
        echoes: [
            counters::ECHO_CHANGE_SOURCE,
            counters::ECHO_ORIGIN,
            counters::ECHO_FINGERPRINT,
        ]
        .iter()
        .map(|n| ((*n).to_owned(), get(n)))
        .collect(),
        conflicts,
        drift_repaired: (
            get(counters::REPAIRED_LOCAL) as u64,
            get(counters::REPAIRED_REMOTE) as u64,
        ),
        webhook_faults: (
            stats.webhook_events_dropped,
            stats.webhook_events_duplicated,
        ),
        identical: convergence.is_identical(),
        seconds: started.elapsed().as_secs_f64(),
    })
}

fn print_report(r: &DemoReport, c: &converge::Convergence) {
    println!();
    println!("hubsync demo report ({:.1} s)", r.seconds);
    println!("  records (local / HubSpot):");
    for (ty, (local, remote)) in &r.records {
        println!("    {ty:<10} {local:>7} / {remote:<7}");
    }
    println!("  HubSpot API calls by phase (the final check's reads not included):");
    for p in &r.phases {
        match p.lower_bound {
            Some(b) => println!(
                "    {:<14} {:>5} calls, lower bound {:>4} (ratio {:.2})",
                p.phase,
                p.total,
                b,
                p.total as f64 / b.max(1) as f64
            ),
            None => println!("    {:<14} {:>5} calls", p.phase, p.total),
        }
        let ops: Vec<String> = p.calls.iter().map(|(op, n)| format!("{op} {n}")).collect();
        println!("                   {}", ops.join(", "));
    }
    println!(
        "  429 answers: {}",
        if r.rate_limited.is_empty() {
            "none".to_owned()
        } else {
            format!("{:?}", r.rate_limited)
        }
    );
    println!(
        "  webhook faults injected: {} events dropped, {} duplicated",
        r.webhook_faults.0, r.webhook_faults.1
    );
    println!("  echoes dropped: {:?}", r.echoes);
    println!("  conflicts settled: {:?}", r.conflicts);
    println!(
        "  drift repaired by reconciliation: {} locally, {} in HubSpot",
        r.drift_repaired.0, r.drift_repaired.1
    );
    if r.identical {
        println!("  final check: PASS — both sides identical, no duplicates in HubSpot");
    } else {
        println!("  final check: FAIL");
        for (ty, t) in &c.types {
            if !t.is_identical() {
                println!(
                    "    {ty}: {} differ, {} missing locally, {} missing in HubSpot, {} duplicate links",
                    t.differences.len(),
                    t.missing_locally.len(),
                    t.missing_remotely.len(),
                    t.duplicate_links.len()
                );
                for d in t.differences.iter().take(5) {
                    println!(
                        "      local {} / HubSpot {}: {:?}",
                        d.local_id.0, d.hubspot_id, d.fields
                    );
                }
            }
        }
        if !c.duplicate_emails.is_empty() {
            println!("    duplicate emails in HubSpot: {:?}", c.duplicate_emails);
        }
    }
}
