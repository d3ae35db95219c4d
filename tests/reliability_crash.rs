//! Crash: `hubsync serve` runs as a real child process against a SQLite file while both sides
//! edit thousands of contacts, and is killed with SIGKILL at seeded random moments and started
//! again. At the end both sides are identical, HubSpot holds no duplicate, and no edit is lost:
//! every edit writes a unique marker, and the last marker written to each field (the app owns
//! `last_name`, HubSpot users own `title`/`jobtitle`) must be on both sides.
//!
//! Short form (CI): 3 kills, 2,000 seeded contacts. Long form (`HUBSYNC_RELIABILITY_LONG=1`):
//! 20 kills (or `HUBSYNC_RELIABILITY_KILLS`), 5,000 seeded contacts. `HUBSYNC_RELIABILITY_SEED`
//! picks the kill moments and the edits.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::twoway::{Editors, remote_contacts, wait_quiet};
use common::{APP, PORTAL, ServeProcess, ServeSpec, TOKEN, WEBHOOK_SECRET};
use hubsync_core::PortalId;
use hubsync_emulator::{Emulator, EmulatorConfig, EmulatorHandle, PortalConfig, SeedSpec, Tier};
use hubsync_engine::converge;
use hubsync_store::Store;
use rand::Rng;

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

async fn start_emulator(seed: u64, contacts: usize) -> (EmulatorHandle, Vec<(String, u64)>) {
    let mut portal = PortalConfig::new(PORTAL, APP);
    portal.private_app_token = Some(TOKEN.to_owned());
    portal.webhook_secret = WEBHOOK_SECRET.to_owned();
    portal.tier = Tier::LimitIncrease;
    let config = EmulatorConfig {
        portals: vec![portal],
        seed,
        ..EmulatorConfig::default()
    };
    let emulator = Emulator::start(
        config,
        tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind"),
    )
    .await
    .expect("emulator");
    let admin = emulator.admin();
    // Failed deliveries (hubsync is down) come back within about a second instead of 30 s.
    admin.update_settings(|s| s.webhook_time_scale = 0.01);
    admin
        .seed(
            PORTAL,
            &SeedSpec {
                contacts,
                companies: contacts / 10,
                deals: 0,
                duplicate_share: 0.0,
                associate: false,
                seed: Some(seed),
            },
        )
        .expect("seed");
    let remote = remote_contacts(&admin)
        .into_iter()
        .map(|(email, id, _)| (email, id))
        .collect();
    (emulator, remote)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_at_random_moments_loses_no_edit_and_duplicates_nothing() {
    let long = common::reliability_long();
    let seed = env_u64("HUBSYNC_RELIABILITY_SEED").unwrap_or(0xC0FFEE);
    let kills = env_u64("HUBSYNC_RELIABILITY_KILLS").unwrap_or(if long { 20 } else { 3 }) as usize;
    let seeded = if long { 5000 } else { 2000 };
    let started = Instant::now();

    let (emulator, remote) = start_emulator(seed, seeded).await;
    let admin = emulator.admin();
    let dir = tempfile::tempdir().expect("tempdir");
    let database_url = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("hubsync.db").display()
    );
    // The app's process: it owns the database file too (SQLite WAL lets both write).
    let store: Arc<dyn Store> = hubsync_store::connect(&database_url).await.expect("store");
    let portal = common::private_portal(250);
    store.upsert_portal(&portal).await.expect("portal");
    let spec = ServeSpec {
        database_url: database_url.clone(),
        hubspot_url: emulator.base_url(),
        port: common::free_port(),
        webhook_secret: WEBHOOK_SECRET.to_owned(),
        workdir: dir.path().to_owned(),
        env: vec![
            ("HUBSYNC_HUBSPOT__BURST_TIER".into(), "250".into()),
            // Claims of a killed process come back after 5 s instead of a minute.
            ("HUBSYNC_OUTBOUND__LEASE_SECS".into(), "5".into()),
            ("HUBSYNC_INBOUND__LEASE_SECS".into(), "5".into()),
        ],
    };
    admin
        .set_webhook(PORTAL, Some(spec.webhook_target()), None)
        .expect("webhook target");

    let mut editors = Editors::new(seed, admin.clone(), Arc::clone(&store), remote);
    // The app already has some contacts of its own.
    editors.app_creates(seeded / 10).await;

    let rate = if long { 80 } else { 60 };
    let mut kill_log = Vec::new();
    for generation in 0..kills {
        let mut serve = ServeProcess::spawn(&spec, generation);
        // A random moment: from mid-start-up to well into the sync.
        let alive = Duration::from_millis(
            editors
                .rng
                .random_range(300..if long { 9000 } else { 7000 }),
        );
        editors.run_until(Instant::now() + alive, rate).await;
        if let Some(status) = serve.child.try_wait().expect("try_wait") {
            panic!(
                "hubsync serve exited by itself ({status}) before kill {generation}:\n{}",
                serve.log_text()
            );
        }
        serve.kill();
        kill_log.push(alive.as_millis());
        // Sometimes the app keeps writing while hubsync is down.
        if editors.rng.random_bool(0.5) {
            let down = Duration::from_millis(editors.rng.random_range(50..1500));
            editors.run_until(Instant::now() + down, rate).await;
        }
    }

    // The last life: keep editing a little, then stop editing and let it finish.
    let mut serve = ServeProcess::spawn(&spec, kills);
    serve.wait_ready(Duration::from_secs(30)).await;
    editors
        .run_until(Instant::now() + Duration::from_secs(2), rate)
        .await;
    wait_quiet(
        &admin,
        &store,
        &mut serve,
        Duration::from_secs(if long { 600 } else { 180 }),
    )
    .await;
    let status = serve.terminate(Duration::from_secs(40)).await;
    assert!(
        status.is_some_and(|s| s.success()),
        "graceful shutdown failed ({status:?}):\n{}",
        serve.log_text()
    );

    // Both sides identical, no duplicates.
    let engine = common::checking_engine(Arc::clone(&store), &emulator.base_url(), &portal).await;
    let convergence = converge::check(&engine, PortalId(PORTAL))
        .await
        .expect("convergence check");
    let depths = store.queue_depths(PortalId(PORTAL)).await.expect("depths");
    let f = &editors.figures;
    eprintln!(
        "crash test: seed {seed:#x}, {kills} kills at {kill_log:?} ms after start, {} seeded contacts, edits: {} remote, {} local, creates: {} local, {} remote (+{} pre-existing local), {} skipped, dead letters {}, {:.1} s",
        seeded,
        f.remote_edits,
        f.local_edits,
        f.local_creates,
        f.remote_creates,
        seeded / 10,
        f.skipped,
        depths.dead_letters,
        started.elapsed().as_secs_f64()
    );
    assert!(
        convergence.is_identical(),
        "the two sides differ after {kills} kills:\n{}",
        common::describe_convergence(&convergence)
    );
    assert_eq!(depths.dead_letters, 0, "nothing may be dead-lettered");

    // No edit lost: the last marker of every field is on both sides, exactly once.
    let lost = editors.lost_edits().await;
    assert!(
        lost.is_empty(),
        "{} edits lost or duplicated, e.g.:\n{}",
        lost.len(),
        lost.iter().take(20).cloned().collect::<Vec<_>>().join("\n")
    );
    assert_eq!(
        remote_contacts(&admin).len(),
        seeded + seeded / 10 + f.local_creates as usize + f.remote_creates as usize,
        "HubSpot holds exactly the seeded, the app's and the people's contacts"
    );
    emulator.shutdown().await;
}
