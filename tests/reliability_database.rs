//! Database faults, with `hubsync serve` as a real child process:
//! - PostgreSQL: every connection of the hubsync process is cut, repeatedly, for seconds at a
//!   time, while both sides edit; once the database answers again hubsync resumes, and both sides
//!   end identical with every edit (per-field markers) on both sides. Skipped with a notice when
//!   no PostgreSQL answers at 127.0.0.1:5432 — and failed when `CI=true`.
//! - SQLite: the database's filesystem fills up (a small tmpfs, filled with a ballast file)
//!   while HubSpot changes arrive; hubsync says clearly that the disk is full, refuses the
//!   deliveries with 503 so HubSpot retries them, and once space is freed it catches up, losing
//!   nothing. Skipped with a notice when mounting a tmpfs is not permitted.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::twoway::{Editors, remote_contacts, wait_quiet};
use common::{APP, PORTAL, ServeProcess, ServeSpec, TOKEN, TestDatabase, WEBHOOK_SECRET};
use hubsync_core::{HubspotId, ObjectType, PortalId};
use hubsync_emulator::{
    DEFAULT_USER_ID, Emulator, EmulatorConfig, EmulatorHandle, ObjectKind, PortalConfig, SeedSpec,
    Tier,
};
use hubsync_engine::converge;
use hubsync_store::Store;

async fn emulator(seed: u64, contacts: usize) -> EmulatorHandle {
    let mut portal = PortalConfig::new(PORTAL, APP);
    portal.private_app_token = Some(TOKEN.to_owned());
    portal.webhook_secret = WEBHOOK_SECRET.to_owned();
    portal.tier = Tier::LimitIncrease;
    let emulator = Emulator::start(
        EmulatorConfig {
            portals: vec![portal],
            seed,
            ..EmulatorConfig::default()
        },
        tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind"),
    )
    .await
    .expect("emulator");
    let admin = emulator.admin();
    admin.update_settings(|s| s.webhook_time_scale = 0.005);
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
    emulator
}

async fn check_converged(
    emulator: &EmulatorHandle,
    store: &Arc<dyn Store>,
) -> converge::Convergence {
    let engine = common::checking_engine(
        Arc::clone(store),
        &emulator.base_url(),
        &common::private_portal(250),
    )
    .await;
    converge::check(&engine, PortalId(PORTAL))
        .await
        .expect("convergence check")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_connections_cut_mid_run_lose_nothing() {
    let Some(db) = TestDatabase::create("cut").await else {
        return;
    };
    let long = common::reliability_long();
    let cuts = if long { 10 } else { 3 };
    let seeded = if long { 3000 } else { 800 };
    let started = Instant::now();
    let emulator = emulator(0xDB, seeded).await;
    let admin = emulator.admin();
    // The app's own connections are not cut: only those of the process named hubsync_serve.
    let store = hubsync_store::connect(&db.url()).await.expect("store");
    store
        .upsert_portal(&common::private_portal(250))
        .await
        .expect("portal");
    let dir = tempfile::tempdir().expect("tempdir");
    let spec = ServeSpec {
        database_url: format!("{}?application_name=hubsync_serve", db.url()),
        hubspot_url: emulator.base_url(),
        port: common::free_port(),
        webhook_secret: WEBHOOK_SECRET.to_owned(),
        workdir: dir.path().to_owned(),
        env: vec![
            ("HUBSYNC_HUBSPOT__BURST_TIER".into(), "250".into()),
            ("HUBSYNC_OUTBOUND__LEASE_SECS".into(), "5".into()),
            ("HUBSYNC_INBOUND__LEASE_SECS".into(), "5".into()),
        ],
    };
    admin
        .set_webhook(PORTAL, Some(spec.webhook_target()), None)
        .expect("target");
    let remote = remote_contacts(&admin)
        .into_iter()
        .map(|(e, id, _)| (e, id))
        .collect();
    let mut editors = Editors::new(0xDB, admin.clone(), Arc::clone(&store), remote);
    editors.app_creates(seeded / 10).await;
    let mut serve = ServeProcess::spawn(&spec, 0);
    serve.wait_ready(Duration::from_secs(30)).await;

    let mut cut_total = 0;
    for _ in 0..cuts {
        editors
            .run_until(Instant::now() + Duration::from_secs(3), 40)
            .await;
        // An outage of two seconds: every connection hubsync opens is cut again at once.
        let outage_end = Instant::now() + Duration::from_secs(2);
        while Instant::now() < outage_end {
            cut_total += terminate_named(&db, "hubsync_serve").await;
            editors.step().await;
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        if let Some(status) = serve.child.try_wait().expect("try_wait") {
            panic!(
                "hubsync serve exited when its database connections were cut ({status}):\n{}",
                serve.log_text()
            );
        }
    }
    editors
        .run_until(Instant::now() + Duration::from_secs(2), 40)
        .await;
    wait_quiet(
        &admin,
        &store,
        &mut serve,
        Duration::from_secs(if long { 600 } else { 180 }),
    )
    .await;
    let status = serve.terminate(Duration::from_secs(40)).await;
    let log = serve.log_text();
    assert!(
        status.is_some_and(|s| s.success()),
        "graceful shutdown failed ({status:?}):\n{log}"
    );

    let convergence = check_converged(&emulator, &store).await;
    let lost = editors.lost_edits().await;
    let depths = store.queue_depths(PortalId(PORTAL)).await.expect("depths");
    let f = &editors.figures;
    eprintln!(
        "postgres cuts: {cuts} outages of 2 s, {cut_total} connections cut, {seeded} seeded, edits {} remote / {} local, creates {} local / {} remote, dead letters {}, {:.1} s",
        f.remote_edits,
        f.local_edits,
        f.local_creates,
        f.remote_creates,
        depths.dead_letters,
        started.elapsed().as_secs_f64()
    );
    assert!(cut_total > 0, "no connection was cut");
    assert!(
        convergence.is_identical(),
        "the two sides differ after the cuts:\n{}",
        common::describe_convergence(&convergence)
    );
    assert!(
        lost.is_empty(),
        "{} edits lost, e.g.:\n{}",
        lost.len(),
        lost.iter().take(20).cloned().collect::<Vec<_>>().join("\n")
    );
    assert_eq!(depths.dead_letters, 0);
    store.close().await;
    emulator.shutdown().await;
    db.drop_database().await;
}

/// Cuts the connections of one application name; returns how many.
async fn terminate_named(db: &TestDatabase, application: &str) -> usize {
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .connect(TestDatabase::SERVER)
        .await
        .expect("admin connection");
    let cut: Vec<(bool,)> = sqlx::query_as("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND application_name = $2")
        .bind(&db.name)
        .bind(application)
        .fetch_all(&pool)
        .await
        .expect("terminate");
    pool.close().await;
    cut.iter().filter(|(ok,)| *ok).count()
}

/// A tmpfs mounted for one test, unmounted on drop.
struct SmallDisk(PathBuf);

impl SmallDisk {
    fn mount(dir: &Path, size: &str) -> Option<SmallDisk> {
        let output = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .output();
        match output {
            Ok(o) if o.status.success() => Some(SmallDisk(dir.to_owned())),
            Ok(o) => {
                eprintln!(
                    "NOTICE: skipped — cannot mount a tmpfs ({})",
                    String::from_utf8_lossy(&o.stderr).trim()
                );
                None
            }
            Err(error) => {
                eprintln!("NOTICE: skipped — cannot run mount ({error})");
                None
            }
        }
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

/// Fills the filesystem at `dir` with a ballast file; returns its path.
fn fill(dir: &Path) -> PathBuf {
    let path = dir.join("ballast");
    let mut file = std::fs::File::create(&path).expect("ballast");
    let block = vec![0u8; 64 * 1024];
    while file.write_all(&block).is_ok() {}
    let small = vec![0u8; 512];
    while file.write_all(&small).is_ok() {}
    let _ = file.sync_all();
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_disk_full_pauses_with_a_clear_error_and_resumes_losing_nothing() {
    let outer = tempfile::tempdir().expect("tempdir");
    let data = outer.path().join("data");
    std::fs::create_dir(&data).expect("mkdir");
    let Some(disk) = SmallDisk::mount(&data, "6m") else {
        return;
    };
    let started = Instant::now();
    let emulator = emulator(0xF011, 300).await;
    let admin = emulator.admin();
    let database_url = format!("sqlite://{}?mode=rwc", data.join("hubsync.db").display());
    let store: Arc<dyn Store> = hubsync_store::connect(&database_url).await.expect("store");
    store
        .upsert_portal(&common::private_portal(250))
        .await
        .expect("portal");
    let spec = ServeSpec {
        database_url,
        hubspot_url: emulator.base_url(),
        port: common::free_port(),
        webhook_secret: WEBHOOK_SECRET.to_owned(),
        workdir: outer.path().to_owned(),
        env: vec![("HUBSYNC_HUBSPOT__BURST_TIER".into(), "250".into())],
    };
    admin
        .set_webhook(PORTAL, Some(spec.webhook_target()), None)
        .expect("target");
    let mut serve = ServeProcess::spawn(&spec, 0);
    serve.wait_ready(Duration::from_secs(30)).await;
    wait_quiet(&admin, &store, &mut serve, Duration::from_secs(60)).await;

    // The disk fills up; people keep creating and editing contacts in HubSpot.
    let ballast = fill(&data);
    let mut created = Vec::new();
    let remote = remote_contacts(&admin);
    for i in 0..40 {
        let id = admin
            .create(
                PORTAL,
                ObjectKind::Contact,
                [
                    ("email", format!("full{i}@disk.example")),
                    ("firstname", format!("Full{i}")),
                ],
                DEFAULT_USER_ID,
            )
            .expect("create");
        created.push(id);
        let (_, edited, _) = &remote[i * 5];
        admin
            .update(
                PORTAL,
                ObjectKind::Contact,
                *edited,
                [("jobtitle", format!("while-full-{i}"))],
                DEFAULT_USER_ID,
            )
            .expect("update");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let refused = admin.stats().portal(PORTAL).webhook_deliveries_failed;
    let log_while_full = serve.log_text();
    if let Some(status) = serve.child.try_wait().expect("try_wait") {
        panic!("hubsync serve exited when the disk filled ({status}):\n{log_while_full}");
    }

    // Space comes back: hubsync catches up on its own.
    std::fs::remove_file(&ballast).expect("free space");
    wait_quiet(&admin, &store, &mut serve, Duration::from_secs(120)).await;
    for id in &created {
        assert!(
            store
                .find_by_hubspot_id(PortalId(PORTAL), ObjectType::Contacts, HubspotId(*id))
                .await
                .expect("read")
                .is_some(),
            "contact {id} created in HubSpot while the disk was full never arrived"
        );
    }
    let status = serve.terminate(Duration::from_secs(40)).await;
    assert!(
        status.is_some_and(|s| s.success()),
        "graceful shutdown failed ({status:?})"
    );
    let convergence = check_converged(&emulator, &store).await;
    eprintln!(
        "sqlite disk full: {} contacts created and {} edited in HubSpot while full, {refused} webhook deliveries refused, {:.1} s",
        created.len(),
        created.len(),
        started.elapsed().as_secs_f64()
    );
    assert!(
        refused > 0,
        "deliveries were refused while the disk was full (else the test did not fill it)"
    );
    let clear: Vec<&str> = log_while_full
        .lines()
        .filter(|l| l.contains("full"))
        .collect();
    eprintln!(
        "sqlite disk full: {} log lines say so, e.g. {}",
        clear.len(),
        clear.first().copied().unwrap_or("")
    );
    assert!(
        !clear.is_empty(),
        "the log says the disk is full:\n{}",
        log_while_full
            .lines()
            .filter(|l| l.contains("WARN") || l.contains("ERROR"))
            .take(20)
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(
        convergence.is_identical(),
        "the two sides differ after the disk-full episode:\n{}",
        common::describe_convergence(&convergence)
    );
    store.close().await;
    emulator.shutdown().await;
    drop(disk);
}
