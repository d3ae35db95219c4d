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

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{APP, PORTAL, ServeProcess, ServeSpec, TOKEN, WEBHOOK_SECRET};
use hubsync_core::{Changes, FieldMap, HubspotId, LocalId, ObjectType, PortalId};
use hubsync_emulator::{DEFAULT_USER_ID, Emulator, EmulatorConfig, EmulatorHandle, ObjectKind, PortalConfig, SeedSpec, Tier};
use hubsync_engine::converge;
use hubsync_store::Store;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};

/// The last marker each side wrote, per record (keyed by its email, which nobody edits).
#[derive(Debug, Default, Clone)]
struct Expected {
    /// Written by HubSpot users (`jobtitle`), or by the app when it created the record.
    title: Option<String>,
    /// Written by the app (`last_name`), or by the HubSpot user who created the record.
    last_name: Option<String>,
}

#[derive(Debug, Default)]
struct Figures {
    remote_edits: u64,
    local_edits: u64,
    local_creates: u64,
    remote_creates: u64,
    skipped: u64,
}

/// The two sides' editors: a person in HubSpot (emulator admin API) and the app (SQL writes
/// through the store, captured by the triggers).
struct Editors {
    rng: StdRng,
    seq: u64,
    admin: hubsync_emulator::Admin,
    store: Arc<dyn Store>,
    portal: PortalId,
    expected: BTreeMap<String, Expected>,
    /// Records created in HubSpot (seeded or by a person): (email, HubSpot id).
    remote: Vec<(String, u64)>,
    /// Records the app created: (email, local id).
    local: Vec<(String, LocalId)>,
    figures: Figures,
}

impl Editors {
    fn marker(&mut self, side: &str) -> String {
        self.seq += 1;
        format!("{side}-{}", self.seq)
    }

    async fn local_id_of(&self, hubspot_id: u64) -> Option<LocalId> {
        self.store
            .find_by_hubspot_id(self.portal, ObjectType::Contacts, HubspotId(hubspot_id))
            .await
            .expect("store read")
            .map(|r| r.local_id)
    }

    async fn hubspot_id_of(&self, local_id: LocalId) -> Option<u64> {
        self.store
            .get_record(self.portal, ObjectType::Contacts, local_id)
            .await
            .expect("store read")
            .and_then(|r| r.hubspot_id)
            .map(|h| h.0)
    }

    /// One random edit on one side.
    async fn step(&mut self) {
        let roll: f64 = self.rng.random();
        if roll < 0.40 {
            // A person edits a title in HubSpot (a seeded record, or one the app created).
            let target = if self.rng.random_bool(0.8) || self.local.is_empty() {
                let (email, id) = self.remote[self.rng.random_range(0..self.remote.len())].clone();
                Some((email, id))
            } else {
                let (email, local_id) = self.local[self.rng.random_range(0..self.local.len())].clone();
                self.hubspot_id_of(local_id).await.map(|id| (email, id))
            };
            let Some((email, id)) = target else {
                self.figures.skipped += 1;
                return;
            };
            let marker = self.marker("r");
            self.admin.update(PORTAL, ObjectKind::Contact, id, [("jobtitle", marker.clone())], DEFAULT_USER_ID).expect("remote edit");
            self.expected.entry(email).or_default().title = Some(marker);
            self.figures.remote_edits += 1;
        } else if roll < 0.80 {
            // The app edits a last name (a record it imported, or one it created).
            let target = if self.rng.random_bool(0.7) || self.local.is_empty() {
                let (email, id) = self.remote[self.rng.random_range(0..self.remote.len())].clone();
                self.local_id_of(id).await.map(|l| (email, l))
            } else {
                let (email, local_id) = self.local[self.rng.random_range(0..self.local.len())].clone();
                Some((email, local_id))
            };
            let Some((email, local_id)) = target else {
                self.figures.skipped += 1;
                return;
            };
            let marker = self.marker("l");
            let changes: Changes = [("last_name".to_owned(), json!(marker))].into_iter().collect();
            let updated = self.store.update_record(self.portal, ObjectType::Contacts, local_id, &changes).await.expect("local edit");
            assert!(updated.is_some(), "local row {} vanished", local_id.0);
            self.expected.entry(email).or_default().last_name = Some(marker);
            self.figures.local_edits += 1;
        } else if roll < 0.90 {
            let marker = self.marker("lc");
            let email = format!("{marker}@app.crash.example");
            let fields = FieldMap::from_unified(&json!({"first_name": "App", "last_name": marker, "title": marker, "email_addresses": [email]}));
            let row = self.store.insert_record(self.portal, ObjectType::Contacts, &fields).await.expect("local create");
            self.expected.insert(email.clone(), Expected { title: Some(marker.clone()), last_name: Some(marker) });
            self.local.push((email, row.local_id));
            self.figures.local_creates += 1;
        } else {
            let marker = self.marker("rc");
            let email = format!("{marker}@hubspot.crash.example");
            let id = self
                .admin
                .create(
                    PORTAL,
                    ObjectKind::Contact,
                    [("email", email.clone()), ("firstname", "Hub".to_owned()), ("lastname", marker.clone()), ("jobtitle", marker.clone())],
                    DEFAULT_USER_ID,
                )
                .expect("remote create");
            self.expected.insert(email.clone(), Expected { title: Some(marker.clone()), last_name: Some(marker) });
            self.remote.push((email, id));
            self.figures.remote_creates += 1;
        }
    }

    /// Edits until `until`, at roughly `per_second` edits a second.
    async fn run_until(&mut self, until: Instant, per_second: u32) {
        let gap = Duration::from_secs(1) / per_second.max(1);
        while Instant::now() < until {
            self.step().await;
            tokio::time::sleep(gap).await;
        }
    }
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

async fn start_emulator(seed: u64, contacts: usize) -> (EmulatorHandle, Vec<(String, u64)>) {
    let mut portal = PortalConfig::new(PORTAL, APP);
    portal.private_app_token = Some(TOKEN.to_owned());
    portal.webhook_secret = WEBHOOK_SECRET.to_owned();
    portal.tier = Tier::LimitIncrease;
    let config = EmulatorConfig { portals: vec![portal], seed, ..EmulatorConfig::default() };
    let emulator = Emulator::start(config, tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind")).await.expect("emulator");
    let admin = emulator.admin();
    // Failed deliveries (hubsync is down) come back within about a second instead of 30 s.
    admin.update_settings(|s| s.webhook_time_scale = 0.01);
    admin
        .seed(PORTAL, &SeedSpec { contacts, companies: contacts / 10, deals: 0, duplicate_share: 0.0, associate: false, seed: Some(seed) })
        .expect("seed");
    let remote = remote_contacts(&admin).into_iter().map(|(email, id, _)| (email, id)).collect();
    (emulator, remote)
}

/// Every live HubSpot contact: (email, id, properties).
fn remote_contacts(admin: &hubsync_emulator::Admin) -> Vec<(String, u64, Value)> {
    let dump = admin.dump(PORTAL).expect("dump");
    dump["objects"]["contacts"]["live"]
        .as_array()
        .expect("contacts")
        .iter()
        .filter_map(|c| {
            let email = c["properties"]["email"].as_str()?.to_ascii_lowercase();
            let id = c["id"].as_str()?.parse().ok()?;
            Some((email, id, c["properties"].clone()))
        })
        .collect()
}

/// Every live local contact, by lower-cased primary email.
async fn local_contacts(store: &Arc<dyn Store>) -> BTreeMap<String, Vec<FieldMap>> {
    let mut out: BTreeMap<String, Vec<FieldMap>> = BTreeMap::new();
    let mut after = None;
    loop {
        let rows = store.list_records(PortalId(PORTAL), ObjectType::Contacts, after, 500, &[]).await.expect("list");
        let Some(last) = rows.last() else { break };
        after = Some(last.local_id);
        for row in rows.into_iter().filter(|r| !r.deleted) {
            if let Some(email) = row.fields.get("email_addresses").as_array().and_then(|a| a.first()).and_then(Value::as_str) {
                out.entry(email.to_ascii_lowercase()).or_default().push(row.fields.clone());
            }
        }
    }
    out
}

/// Waits until the emulator has nothing left to deliver and both queues stay empty.
async fn wait_quiet(admin: &hubsync_emulator::Admin, store: &Arc<dyn Store>, serve: &mut ServeProcess, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    let mut quiet = 0;
    while quiet < 3 {
        admin.wait_webhooks_idle(Duration::from_secs(10)).await;
        let depths = store.queue_depths(PortalId(PORTAL)).await.expect("depths");
        let pending = admin.webhooks_pending(PORTAL).expect("pending");
        quiet = if depths.outbox == 0 && depths.inbox == 0 && pending == 0 { quiet + 1 } else { 0 };
        if let Some(status) = serve.child.try_wait().expect("try_wait") {
            panic!("hubsync serve exited ({status}) while settling:\n{}", serve.log_text());
        }
        assert!(Instant::now() < deadline, "queues did not drain within {timeout:?}: {depths:?}, {pending} webhooks pending");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
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
    let database_url = format!("sqlite://{}?mode=rwc", dir.path().join("hubsync.db").display());
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
    admin.set_webhook(PORTAL, Some(spec.webhook_target()), None).expect("webhook target");

    let mut editors = Editors {
        rng: StdRng::seed_from_u64(seed),
        seq: 0,
        admin: admin.clone(),
        store: Arc::clone(&store),
        portal: PortalId(PORTAL),
        expected: BTreeMap::new(),
        remote,
        local: Vec::new(),
        figures: Figures::default(),
    };
    // The app already has some contacts of its own.
    for _ in 0..(seeded / 10) {
        let marker = editors.marker("lc");
        let email = format!("{marker}@app.crash.example");
        let fields = FieldMap::from_unified(&json!({"first_name": "App", "last_name": marker, "title": marker, "email_addresses": [email]}));
        let row = store.insert_record(PortalId(PORTAL), ObjectType::Contacts, &fields).await.expect("insert");
        editors.expected.insert(email.clone(), Expected { title: Some(marker.clone()), last_name: Some(marker) });
        editors.local.push((email, row.local_id));
    }

    let rate = if long { 80 } else { 60 };
    let mut kill_log = Vec::new();
    for generation in 0..kills {
        let mut serve = ServeProcess::spawn(&spec, generation);
        // A random moment: from mid-start-up to well into the sync.
        let alive = Duration::from_millis(editors.rng.random_range(300..if long { 9000 } else { 7000 }));
        editors.run_until(Instant::now() + alive, rate).await;
        if let Some(status) = serve.child.try_wait().expect("try_wait") {
            panic!("hubsync serve exited by itself ({status}) before kill {generation}:\n{}", serve.log_text());
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
    editors.run_until(Instant::now() + Duration::from_secs(2), rate).await;
    wait_quiet(&admin, &store, &mut serve, Duration::from_secs(if long { 600 } else { 180 })).await;
    let status = serve.terminate(Duration::from_secs(40)).await;
    assert!(status.is_some_and(|s| s.success()), "graceful shutdown failed ({status:?}):\n{}", serve.log_text());

    // Both sides identical, no duplicates.
    let engine = common::checking_engine(Arc::clone(&store), &emulator.base_url(), &portal).await;
    let convergence = converge::check(&engine, PortalId(PORTAL)).await.expect("convergence check");
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
    assert!(convergence.is_identical(), "the two sides differ after {kills} kills:\n{}", common::describe_convergence(&convergence));
    assert_eq!(depths.dead_letters, 0, "nothing may be dead-lettered");

    // No edit lost: the last marker of every field is on both sides, exactly once.
    let remote_by_email: BTreeMap<String, Vec<Value>> = remote_contacts(&admin).into_iter().fold(BTreeMap::new(), |mut m, (e, _, p)| {
        m.entry(e).or_default().push(p);
        m
    });
    let local_by_email = local_contacts(&store).await;
    let mut lost = Vec::new();
    for (email, want) in &editors.expected {
        let remote = remote_by_email.get(email).map(Vec::as_slice).unwrap_or(&[]);
        let local = local_by_email.get(email).map(Vec::as_slice).unwrap_or(&[]);
        if remote.len() != 1 || local.len() != 1 {
            lost.push(format!("{email}: {} in HubSpot, {} locally", remote.len(), local.len()));
            continue;
        }
        let (r, l) = (&remote[0], &local[0]);
        if let Some(title) = &want.title
            && (r["jobtitle"].as_str() != Some(title) || l.get("title").as_str() != Some(title))
        {
            lost.push(format!("{email}: title {title} — HubSpot {}, local {}", r["jobtitle"], l.get("title")));
        }
        if let Some(name) = &want.last_name
            && (r["lastname"].as_str() != Some(name) || l.get("last_name").as_str() != Some(name))
        {
            lost.push(format!("{email}: last_name {name} — HubSpot {}, local {}", r["lastname"], l.get("last_name")));
        }
    }
    assert!(lost.is_empty(), "{} edits lost or duplicated, e.g.:\n{}", lost.len(), lost.iter().take(20).cloned().collect::<Vec<_>>().join("\n"));
    assert_eq!(
        remote_by_email.len(),
        seeded + seeded / 10 + f.local_creates as usize + f.remote_creates as usize,
        "HubSpot holds exactly the seeded, the app's and the people's contacts"
    );
    emulator.shutdown().await;
}
