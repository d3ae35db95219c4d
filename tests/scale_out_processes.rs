//! Scale-out: several real `hubsync serve` processes share one PostgreSQL database and an
//! emulated HubSpot with many portals (mixed tiers, a competing app spending part of every
//! budget) while both sides edit. Along the way one process is SIGKILLed, a new one joins, and
//! another is paused (SIGSTOP) past its leases and woken up again. At the end every portal's two
//! sides are identical with no duplicate in HubSpot, every last edit is on both sides, and no
//! portal went over its budget. Takeover and fair-share times are measured and printed.
//!
//! CI form: 20 portals. Long form (`HUBSYNC_SCALE_LONG=1`): 200 portals, longer editing.
//! Needs PostgreSQL at 127.0.0.1:5432 (user postgres, trust): skipped with a notice when none
//! answers, failed when `CI=true`.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{APP, ServeProcess, ServeSpec, WEBHOOK_SECRET};
use hubsync_core::{AppId, Changes, FieldMap, HubspotId, LocalId, ObjectType, PortalId};
use hubsync_emulator::{
    DEFAULT_USER_ID, Emulator, EmulatorConfig, EmulatorHandle, ObjectKind, PortalConfig, SeedSpec,
    Tier,
};
use hubsync_engine::{Engine, EngineSettings, converge, setup};
use hubsync_hubspot::{ClientConfig, HubspotClient};
use hubsync_mapping::Mappings;
use hubsync_store::{Portal, PortalAuth, PortalStatus, Store};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};

/// Seconds a portal lease lasts in this test (CI form; the long form uses the default 15 s
/// lease, which its 67 portals per process need).
const LEASE_SECS: u64 = 4;
/// The long form's lease.
const LONG_LEASE_SECS: u64 = 15;
/// The competing app's share of every portal's burst budget, in percent.
const COMPETING_PCT: f64 = 10.0;
/// First portal id.
const FIRST_PORTAL: u64 = 7_100_000;
/// Lease ids from here on are process memberships, not portals.
const MEMBERSHIP_BASE: i64 = 9_000_000_000_000_000_000;

fn long_form() -> bool {
    std::env::var("HUBSYNC_SCALE_LONG").is_ok_and(|v| v == "1" || v == "true")
}

fn now_ms() -> i64 {
    let since_epoch = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970");
    since_epoch.as_millis() as i64
}

/// The tier of the `i`-th portal: a mix of every burst budget, including a tight custom one.
fn tier_of(i: usize) -> Tier {
    match i % 4 {
        0 => Tier::Starter,
        1 => Tier::Professional,
        2 => Tier::LimitIncrease,
        _ => Tier::Custom {
            burst: 60,
            daily: 200_000,
        },
    }
}

fn token_of(portal: u64) -> String {
    format!("pat-na1-scale-{portal}")
}

// ----- the database ---------------------------------------------------------------------------

/// A uniquely named database on the local PostgreSQL server, for this test only.
struct Database {
    name: String,
    pool: sqlx::PgPool,
}

impl Database {
    const SERVER: &'static str = "postgres://postgres@127.0.0.1:5432/postgres";

    async fn create() -> Option<Database> {
        let options = sqlx::postgres::PgPoolOptions::new()
            .max_connections(2)
            .acquire_timeout(Duration::from_secs(5));
        let server = match options.connect(Self::SERVER).await {
            Ok(pool) => pool,
            Err(error) => {
                assert!(
                    std::env::var("CI").as_deref() != Ok("true"),
                    "CI=true but PostgreSQL at 127.0.0.1:5432 does not answer: {error}"
                );
                eprintln!(
                    "NOTICE: scale-out test skipped — no PostgreSQL at 127.0.0.1:5432 ({error})"
                );
                return None;
            }
        };
        let name = format!(
            "hubsync_scale_{}_{}",
            std::process::id(),
            rand::random::<u32>()
        );
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&server)
            .await
            .expect("create database");
        let pool = sqlx::postgres::PgPoolOptions::new()
            .max_connections(2)
            .connect(&format!("postgres://postgres@127.0.0.1:5432/{name}"))
            .await
            .expect("connect to the test database");
        server.close().await;
        Some(Database { name, pool })
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:5432/{}", self.name)
    }

    /// Live leases: portal → owner, and the live process memberships (owners).
    async fn ownership(&self) -> (BTreeMap<u64, String>, BTreeSet<String>) {
        let rows: Vec<(i64, String, i64)> =
            sqlx::query_as("SELECT portal_id, owner, expires_at FROM leases")
                .fetch_all(&self.pool)
                .await
                .expect("read leases");
        let now = now_ms();
        let mut portals = BTreeMap::new();
        let mut members = BTreeSet::new();
        for (id, owner, _) in rows.into_iter().filter(|r| r.2 > now) {
            if id >= MEMBERSHIP_BASE {
                members.insert(owner);
            } else {
                portals.insert(id as u64, owner);
            }
        }
        (portals, members)
    }
}

impl Drop for Database {
    /// Drops the database even when the test fails (the processes are gone by then: the
    /// cluster is declared later, so it is dropped first).
    fn drop(&mut self) {
        let name = self.name.clone();
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async {
                let server = sqlx::PgPool::connect(Self::SERVER).await?;
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                )))
                .execute(&server)
                .await?;
                server.close().await;
                Ok::<(), sqlx::Error>(())
            })
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) {
            eprintln!(
                "NOTICE: could not drop the test database {}: {dropped:?}",
                self.name
            );
        }
    }
}

/// How many portals each process (by name, `p1`…) holds.
fn holdings(portals: &BTreeMap<u64, String>) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for owner in portals.values() {
        *out.entry(process_of(owner)).or_default() += 1;
    }
    out
}

/// The process name in an owner (`p2#1a2b3c4d` → `p2`).
fn process_of(owner: &str) -> String {
    owner.split('#').next().unwrap_or(owner).to_owned()
}

// ----- the editors ----------------------------------------------------------------------------

/// The last marker each side wrote to a contact (keyed by portal and email, which nobody edits).
#[derive(Debug, Default, Clone)]
struct Expected {
    /// Written in HubSpot (`jobtitle`), or by the app when it created the record.
    title: Option<String>,
    /// Written by the app (`last_name`), or in HubSpot when the record was created there.
    last_name: Option<String>,
}

/// People editing in HubSpot (the emulator's admin API) and the app writing its own tables,
/// across every portal.
struct Editors {
    rng: StdRng,
    seq: u64,
    admin: hubsync_emulator::Admin,
    store: Arc<dyn Store>,
    portals: Vec<u64>,
    expected: BTreeMap<(u64, String), Expected>,
    /// Contacts that exist in HubSpot (seeded or created there): (email, HubSpot id) per portal.
    remote: BTreeMap<u64, Vec<(String, u64)>>,
    /// Contacts the app created: (email, local id) per portal.
    local: BTreeMap<u64, Vec<(String, LocalId)>>,
    edits: u64,
}

impl Editors {
    fn marker(&mut self, side: &str) -> String {
        self.seq += 1;
        format!("{side}-{}", self.seq)
    }

    async fn step(&mut self) {
        let portal = self.portals[self.rng.random_range(0..self.portals.len())];
        let roll: f64 = self.rng.random();
        self.edits += 1;
        if roll < 0.45 {
            let list = &self.remote[&portal];
            let (email, id) = list[self.rng.random_range(0..list.len())].clone();
            let marker = self.marker("r");
            self.admin
                .update(
                    portal,
                    ObjectKind::Contact,
                    id,
                    [("jobtitle", marker.clone())],
                    DEFAULT_USER_ID,
                )
                .expect("remote edit");
            self.expected.entry((portal, email)).or_default().title = Some(marker);
        } else if roll < 0.85 {
            let pick_local = self.rng.random_bool(0.5) && !self.local[&portal].is_empty();
            let (email, local_id) = if pick_local {
                let list = &self.local[&portal];
                list[self.rng.random_range(0..list.len())].clone()
            } else {
                let list = &self.remote[&portal];
                let (email, id) = list[self.rng.random_range(0..list.len())].clone();
                let found = self
                    .store
                    .find_by_hubspot_id(PortalId(portal), ObjectType::Contacts, HubspotId(id))
                    .await
                    .expect("store read");
                let Some(row) = found else {
                    // Not imported yet: nothing to edit locally.
                    self.edits -= 1;
                    return;
                };
                (email, row.local_id)
            };
            let marker = self.marker("l");
            let changes: Changes = [("last_name".to_owned(), json!(marker))]
                .into_iter()
                .collect();
            let updated = self
                .store
                .update_record(PortalId(portal), ObjectType::Contacts, local_id, &changes)
                .await
                .expect("local edit");
            assert!(
                updated.is_some(),
                "local row {} of portal {portal} vanished",
                local_id.0
            );
            self.expected.entry((portal, email)).or_default().last_name = Some(marker);
        } else if roll < 0.93 {
            let marker = self.marker("lc");
            let email = format!("{marker}@app.scale.example");
            let fields = FieldMap::from_unified(
                &json!({"first_name": "App", "last_name": marker, "title": marker, "email_addresses": [email]}),
            );
            let row = self
                .store
                .insert_record(PortalId(portal), ObjectType::Contacts, &fields)
                .await
                .expect("local create");
            self.expected.insert(
                (portal, email.clone()),
                Expected {
                    title: Some(marker.clone()),
                    last_name: Some(marker),
                },
            );
            self.local
                .entry(portal)
                .or_default()
                .push((email, row.local_id));
        } else {
            let marker = self.marker("rc");
            let email = format!("{marker}@hubspot.scale.example");
            let props = [
                ("email", email.clone()),
                ("firstname", "Hub".to_owned()),
                ("lastname", marker.clone()),
                ("jobtitle", marker.clone()),
            ];
            let id = self
                .admin
                .create(portal, ObjectKind::Contact, props, DEFAULT_USER_ID)
                .expect("remote create");
            self.expected.insert(
                (portal, email.clone()),
                Expected {
                    title: Some(marker.clone()),
                    last_name: Some(marker),
                },
            );
            self.remote.entry(portal).or_default().push((email, id));
        }
    }

    async fn run_until(&mut self, until: Instant, per_second: u32) {
        let gap = Duration::from_secs(1) / per_second.max(1);
        while Instant::now() < until {
            self.step().await;
            tokio::time::sleep(gap).await;
        }
    }
}

// ----- the processes --------------------------------------------------------------------------

/// The `hubsync serve` processes, by name.
struct Cluster {
    base: ServeSpec,
    processes: BTreeMap<String, (ServeSpec, ServeProcess)>,
    spawned: usize,
}

impl Cluster {
    fn spawn(&mut self, name: &str) {
        let mut spec = self.base.clone();
        spec.port = common::free_port();
        spec.env
            .push(("HUBSYNC_SCALE__PROCESS_NAME".into(), name.into()));
        let process = ServeProcess::spawn(&spec, self.spawned);
        self.spawned += 1;
        self.processes.insert(name.to_owned(), (spec, process));
    }

    fn process(&mut self, name: &str) -> &mut ServeProcess {
        &mut self
            .processes
            .get_mut(name)
            .expect("a process of that name")
            .1
    }

    fn webhook_target(&self, name: &str) -> String {
        self.processes[name].0.webhook_target()
    }

    fn signal(&self, name: &str, signal: &str) {
        let pid = self.processes[name].1.child.id();
        let status = std::process::Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(pid.to_string())
            .status()
            .expect("kill");
        assert!(status.success(), "kill -{signal} {pid} failed");
    }

    /// SIGKILL, and forget the process.
    fn kill(&mut self, name: &str) {
        if let Some((_, mut process)) = self.processes.remove(name) {
            process.kill();
        }
    }

    /// Panics with the log of any process that exited by itself.
    fn assert_running(&mut self) {
        for (name, (_, process)) in &mut self.processes {
            if let Some(status) = process.child.try_wait().expect("try_wait") {
                panic!(
                    "hubsync serve {name} exited by itself ({status}):\n{}",
                    process.log_text()
                );
            }
        }
    }
}

// ----- set-up ---------------------------------------------------------------------------------

async fn start_emulator(
    portals: &[u64],
    seeded: usize,
    tier_of: fn(usize) -> Tier,
) -> (EmulatorHandle, BTreeMap<u64, Vec<(String, u64)>>) {
    let configs = portals
        .iter()
        .enumerate()
        .map(|(i, id)| {
            let mut portal = PortalConfig::new(*id, APP);
            portal.private_app_token = Some(token_of(*id));
            portal.webhook_secret = WEBHOOK_SECRET.to_owned();
            portal.tier = tier_of(i);
            portal
        })
        .collect();
    let config = EmulatorConfig {
        portals: configs,
        seed: 0x5CA1E,
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
    // Deliveries that fail (their process died) come back within about a second.
    admin.update_settings(|s| s.webhook_time_scale = 0.01);
    admin.set_faults(hubsync_emulator::Faults {
        competing_app_share_pct: COMPETING_PCT,
        ..hubsync_emulator::Faults::default()
    });
    let mut remote = BTreeMap::new();
    for (i, id) in portals.iter().enumerate() {
        let spec = SeedSpec {
            contacts: seeded,
            companies: seeded / 5,
            deals: 0,
            duplicate_share: 0.0,
            associate: false,
            seed: Some(i as u64),
        };
        admin.seed(*id, &spec).expect("seed");
        remote.insert(
            *id,
            remote_contacts(&admin, *id)
                .into_iter()
                .map(|(email, id, _)| (email, id))
                .collect(),
        );
    }
    (emulator, remote)
}

fn portal_row(id: u64, tier: Tier) -> Portal {
    Portal {
        portal_id: PortalId(id),
        name: format!("scale-{id}"),
        app_id: Some(AppId(APP)),
        auth: PortalAuth(json!({"kind": "private_app", "token": token_of(id)})),
        status: PortalStatus::Active,
        status_reason: None,
        config: json!({"burst_tier": tier.burst()}),
        created_at: 0,
    }
}

/// Every live HubSpot contact of a portal: (email, id, properties).
fn remote_contacts(admin: &hubsync_emulator::Admin, portal: u64) -> Vec<(String, u64, Value)> {
    let dump = admin.dump(portal).expect("dump");
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

/// Every live local contact of a portal, by lower-cased primary email.
async fn local_contacts(store: &Arc<dyn Store>, portal: u64) -> BTreeMap<String, Vec<FieldMap>> {
    let mut out: BTreeMap<String, Vec<FieldMap>> = BTreeMap::new();
    let mut after = None;
    loop {
        let rows = store
            .list_records(PortalId(portal), ObjectType::Contacts, after, 500, &[])
            .await
            .expect("list");
        let Some(last) = rows.last() else { break };
        after = Some(last.local_id);
        for row in rows.into_iter().filter(|r| !r.deleted) {
            if let Some(email) = row
                .fields
                .get("email_addresses")
                .as_array()
                .and_then(|a| a.first())
                .and_then(Value::as_str)
            {
                out.entry(email.to_ascii_lowercase())
                    .or_default()
                    .push(row.fields.clone());
            }
        }
    }
    out
}

// ----- measurements ---------------------------------------------------------------------------

/// Our app's request count per portal, sampled over time, to find the busiest window.
#[derive(Default)]
struct Sampler {
    samples: Vec<(Instant, BTreeMap<u64, u64>)>,
}

impl Sampler {
    fn sample(&mut self, admin: &hubsync_emulator::Admin) {
        let stats = admin.stats();
        let counts = stats
            .portals
            .iter()
            .map(|(id, s)| (*id, s.requests_by_app.get(&APP).copied().unwrap_or(0)))
            .collect();
        self.samples.push((Instant::now(), counts));
    }

    /// Per portal, the most requests our app made within any sampled interval no longer than
    /// the burst window.
    fn busiest_window(&self, window: Duration) -> BTreeMap<u64, u64> {
        let mut out: BTreeMap<u64, u64> = BTreeMap::new();
        for (i, (start, before)) in self.samples.iter().enumerate() {
            for (end, after) in &self.samples[i + 1..] {
                if end.duration_since(*start) > window {
                    break;
                }
                for (portal, n) in after {
                    let delta = n - before.get(portal).copied().unwrap_or(0);
                    let max = out.entry(*portal).or_default();
                    *max = (*max).max(delta);
                }
            }
        }
        out
    }
}

/// Waits until every portal's queues are empty and the emulator has nothing left to deliver,
/// three checks in a row.
async fn wait_quiet(
    admin: &hubsync_emulator::Admin,
    store: &Arc<dyn Store>,
    portals: &[u64],
    cluster: &mut Cluster,
    timeout: Duration,
) {
    let deadline = Instant::now() + timeout;
    let mut quiet = 0;
    while quiet < 3 {
        admin.wait_webhooks_idle(Duration::from_secs(10)).await;
        let mut busy = Vec::new();
        for portal in portals {
            let depths = store.queue_depths(PortalId(*portal)).await.expect("depths");
            let pending = admin.webhooks_pending(*portal).expect("pending");
            if depths.outbox > 0 || depths.inbox > 0 || pending > 0 {
                busy.push((*portal, depths.outbox, depths.inbox, pending));
            }
        }
        quiet = if busy.is_empty() { quiet + 1 } else { 0 };
        cluster.assert_running();
        assert!(
            Instant::now() < deadline,
            "queues did not drain within {timeout:?}: (portal, outbox, inbox, webhooks) {busy:?}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

// ----- the test -------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn processes_share_portals_survive_kill_join_and_pause_and_converge() {
    let Some(db) = Database::create().await else {
        return;
    };
    let long = long_form();
    let portal_count: usize = if long { 200 } else { 20 };
    let seeded = if long { 30 } else { 25 };
    let rate = if long { 60 } else { 40 };
    let lease_secs = if long { LONG_LEASE_SECS } else { LEASE_SECS };
    let lease = Duration::from_secs(lease_secs);
    let started = Instant::now();

    let portals: Vec<u64> = (0..portal_count as u64).map(|i| FIRST_PORTAL + i).collect();
    let (emulator, remote) = start_emulator(&portals, seeded, tier_of).await;
    let admin = emulator.admin();
    let store: Arc<dyn Store> = hubsync_store::connect(&db.url()).await.expect("store");
    for (i, id) in portals.iter().enumerate() {
        store
            .upsert_portal(&portal_row(*id, tier_of(i)))
            .await
            .expect("portal");
    }
    // HUBSYNC_SCALE_LOGS=<dir> keeps the processes' logs there.
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("tempdir");
    let dir_path = match std::env::var("HUBSYNC_SCALE_LOGS") {
        Ok(logs) => {
            std::fs::create_dir_all(&logs).expect("log directory");
            std::path::PathBuf::from(logs)
        }
        Err(_) => dir.path().to_owned(),
    };
    let mut cluster = Cluster {
        base: ServeSpec {
            database_url: db.url(),
            hubspot_url: emulator.base_url(),
            port: 0,
            webhook_secret: WEBHOOK_SECRET.to_owned(),
            workdir: dir_path.clone(),
            env: vec![
                ("HUBSYNC_SCALE__LEASE_SECS".into(), lease_secs.to_string()),
                // Claims of a killed or paused process come back after 3 s instead of a minute.
                ("HUBSYNC_OUTBOUND__LEASE_SECS".into(), "3".into()),
                ("HUBSYNC_INBOUND__LEASE_SECS".into(), "3".into()),
                ("HUBSYNC_RECONCILE__INTERVAL_SECS".into(), "10".into()),
            ],
        },
        processes: BTreeMap::new(),
        spawned: 0,
    };
    let mut editors = Editors {
        rng: StdRng::seed_from_u64(0x5CA1E),
        seq: 0,
        admin: admin.clone(),
        store: Arc::clone(&store),
        portals: portals.clone(),
        expected: BTreeMap::new(),
        remote,
        local: portals.iter().map(|p| (*p, Vec::new())).collect(),
        edits: 0,
    };
    // The app already has contacts of its own in every portal.
    for portal in &portals {
        for _ in 0..5 {
            let marker = editors.marker("lc");
            let email = format!("{marker}@app.scale.example");
            let fields = FieldMap::from_unified(
                &json!({"first_name": "App", "last_name": marker, "title": marker, "email_addresses": [email]}),
            );
            let row = store
                .insert_record(PortalId(*portal), ObjectType::Contacts, &fields)
                .await
                .expect("insert");
            editors.expected.insert(
                (*portal, email.clone()),
                Expected {
                    title: Some(marker.clone()),
                    last_name: Some(marker),
                },
            );
            editors
                .local
                .entry(*portal)
                .or_default()
                .push((email, row.local_id));
        }
    }

    // Three processes; any of them takes any portal's webhooks (round robin, no stickiness).
    for name in ["p1", "p2", "p3"] {
        cluster.spawn(name);
    }
    for name in ["p1", "p2", "p3"] {
        cluster
            .process(name)
            .wait_ready(Duration::from_secs(30))
            .await;
    }
    let names = ["p1", "p2", "p3"];
    for (i, portal) in portals.iter().enumerate() {
        admin
            .set_webhook(*portal, Some(cluster.webhook_target(names[i % 3])), None)
            .expect("webhook target");
    }
    let mut sampler = Sampler::default();
    sampler.sample(&admin);

    // Every portal owned, by three processes, none above its fair share.
    let share = portal_count.div_ceil(3);
    let mut spread = BTreeMap::new();
    let ready = Instant::now();
    while ready.elapsed() < Duration::from_secs(if long { 180 } else { 60 }) {
        editors
            .run_until(Instant::now() + Duration::from_millis(500), rate)
            .await;
        sampler.sample(&admin);
        let (owned, _) = db.ownership().await;
        spread = holdings(&owned);
        if owned.len() == portal_count && spread.len() == 3 && spread.values().all(|n| *n <= share)
        {
            break;
        }
    }
    eprintln!(
        "scale-out: initial spread {spread:?} {:.1} s after the processes were ready",
        ready.elapsed().as_secs_f64()
    );
    assert!(
        spread.values().all(|n| *n <= share) && spread.values().sum::<usize>() == portal_count,
        "initial spread {spread:?}"
    );

    // Edit a while, then SIGKILL p1 mid-run; the others take its portals over.
    editors
        .run_until(
            Instant::now() + Duration::from_secs(if long { 15 } else { 4 }),
            rate,
        )
        .await;
    let (owned, _) = db.ownership().await;
    let orphans: Vec<u64> = owned
        .iter()
        .filter(|(_, o)| process_of(o) == "p1")
        .map(|(p, _)| *p)
        .collect();
    cluster.kill("p1");
    let killed = Instant::now();
    for (i, portal) in portals.iter().enumerate() {
        if names[i % 3] == "p1" {
            admin
                .set_webhook(*portal, Some(cluster.webhook_target("p2")), None)
                .expect("webhook target");
        }
    }
    let takeover = loop {
        editors
            .run_until(Instant::now() + Duration::from_millis(100), rate)
            .await;
        let (owned, _) = db.ownership().await;
        if orphans
            .iter()
            .all(|p| owned.get(p).is_some_and(|o| process_of(o) != "p1"))
        {
            break killed.elapsed();
        }
        assert!(
            killed.elapsed() < 6 * lease,
            "p1's portals not taken over within {:?}",
            6 * lease
        );
    };
    sampler.sample(&admin);
    eprintln!(
        "scale-out: {} portals of the killed process taken over in {:.2} s (lease {lease_secs} s, bound {} s: {})",
        orphans.len(),
        takeover.as_secs_f64(),
        2 * lease_secs,
        if takeover <= 2 * lease {
            "met"
        } else {
            "MISSED"
        }
    );
    // The design bound is 2 × the lease (printed above); the assertion only catches a takeover
    // that does not happen, since a loaded CI machine stretches every round.
    assert!(takeover <= 4 * lease, "takeover took {takeover:?}");

    // A new process joins and takes its fair share.
    cluster.spawn("p4");
    let spawned = Instant::now();
    let mut joined = None;
    let fair = portal_count / 3;
    let (fair_share_at, p4_held) = loop {
        editors
            .run_until(Instant::now() + Duration::from_millis(100), rate)
            .await;
        let (owned, members) = db.ownership().await;
        if joined.is_none() && members.iter().any(|m| process_of(m) == "p4") {
            joined = Some(Instant::now());
        }
        let held = holdings(&owned).get("p4").copied().unwrap_or(0);
        if held >= fair {
            break (Instant::now(), held);
        }
        assert!(
            spawned.elapsed() < Duration::from_secs(30),
            "p4 holds {held} portals after 30 s; fair share {fair}"
        );
    };
    let joined = joined.unwrap_or(fair_share_at);
    let since_join = fair_share_at.duration_since(joined);
    eprintln!(
        "scale-out: new process holds {p4_held} portals (fair share ≥ {fair}) {:.2} s after joining (target ≤ {lease_secs} s: {}), {:.2} s after spawn",
        since_join.as_secs_f64(),
        if since_join <= lease { "met" } else { "MISSED" },
        fair_share_at.duration_since(spawned).as_secs_f64()
    );
    // The target is one lease (printed above); the bound leaves room for a loaded CI machine.
    assert!(
        since_join <= 4 * lease,
        "the new process took {since_join:?} from joining to its fair share"
    );
    cluster
        .process("p4")
        .wait_ready(Duration::from_secs(30))
        .await;
    for (i, portal) in portals.iter().enumerate() {
        if i % 4 == 0 {
            admin
                .set_webhook(*portal, Some(cluster.webhook_target("p4")), None)
                .expect("webhook target");
        }
    }
    sampler.sample(&admin);

    // p2 freezes past its leases (as a long GC pause or a VM stall would) and wakes up: the
    // others own its portals by then, so it must notice and its stale writes must be refused.
    for (i, portal) in portals.iter().enumerate() {
        if names[i % 3] != "p3" && i % 4 != 0 {
            admin
                .set_webhook(*portal, Some(cluster.webhook_target("p3")), None)
                .expect("webhook target");
        }
    }
    cluster.signal("p2", "STOP");
    let frozen = Instant::now();
    while frozen.elapsed() < lease * 5 / 2 {
        editors
            .run_until(Instant::now() + Duration::from_millis(500), rate)
            .await;
        sampler.sample(&admin);
    }
    cluster.signal("p2", "CONT");
    editors
        .run_until(
            Instant::now() + Duration::from_secs(if long { 20 } else { 4 }),
            rate,
        )
        .await;
    sampler.sample(&admin);
    let p2_log = cluster.process("p2").log_text();
    assert!(
        p2_log.contains("lease lost") || p2_log.contains("write refused"),
        "the paused process never noticed that its leases moved on:\n{p2_log}"
    );

    // Stop editing; let everything settle.
    let edits = editors.edits;
    let settle = Instant::now();
    wait_quiet(
        &admin,
        &store,
        &portals,
        &mut cluster,
        Duration::from_secs(if long { 600 } else { 120 }),
    )
    .await;
    sampler.sample(&admin);
    let settled_in = settle.elapsed();
    let (owned, members) = db.ownership().await;
    let final_spread = holdings(&owned);
    let stats = admin.stats();

    for name in ["p2", "p3", "p4"] {
        let process = cluster.process(name);
        let status = process.terminate(Duration::from_secs(40)).await;
        assert!(
            status.is_some_and(|s| s.success()),
            "graceful shutdown of {name} failed ({status:?}):\n{}",
            process.log_text()
        );
    }

    // Budgets: no 429s for lack of budget, no portal above its burst in any window.
    let window = Duration::from_millis(10_000);
    let busiest = sampler.busiest_window(window);
    let mut over = Vec::new();
    let (mut requests, mut limited) = (0u64, 0u64);
    for (i, portal) in portals.iter().enumerate() {
        let s = stats.portal(*portal);
        requests += s.requests_by_app.get(&APP).copied().unwrap_or(0);
        limited += s.rate_limited.values().sum::<u64>();
        let burst = u64::from(tier_of(i).burst());
        if busiest.get(portal).copied().unwrap_or(0) > burst {
            over.push((*portal, busiest[portal], burst));
        }
    }
    let budget_sum: u64 = (0..portal_count)
        .map(|i| u64::from(tier_of(i).burst()))
        .sum();
    let peak_sum: u64 = busiest.values().sum();

    // Both sides identical and no duplicates, portal by portal.
    let hubspot =
        HubspotClient::new(ClientConfig::with_base_url(emulator.base_url())).expect("client");
    let settings = EngineSettings {
        app_id: Some(AppId(APP)),
        ..EngineSettings::default()
    };
    let engine = Engine {
        store: Arc::clone(&store),
        mappings: Arc::new(Mappings::embedded().expect("mappings")),
        hubspot,
        settings: Arc::new(settings),
    };
    let mut diverged = Vec::new();
    let mut lost = Vec::new();
    for portal in &portals {
        let row = store
            .get_portal(PortalId(*portal))
            .await
            .expect("portal")
            .expect("portal row");
        assert_eq!(
            row.status,
            PortalStatus::Active,
            "portal {portal} ended {:?}: {:?}",
            row.status,
            row.status_reason
        );
        setup::connect_portal(&engine, &row, None)
            .await
            .expect("connect");
        let convergence = converge::check(&engine, PortalId(*portal))
            .await
            .expect("convergence check");
        if !convergence.is_identical() {
            diverged.push(format!(
                "portal {portal}:\n{}",
                common::describe_convergence(&convergence)
            ));
        }
        let remote: BTreeMap<String, Vec<Value>> = remote_contacts(&admin, *portal)
            .into_iter()
            .fold(BTreeMap::new(), |mut m, (e, _, p)| {
                m.entry(e).or_default().push(p);
                m
            });
        let local = local_contacts(&store, *portal).await;
        for ((p, email), want) in editors.expected.iter().filter(|((p, _), _)| p == portal) {
            let (Some([r]), Some([l])) = (
                remote.get(email).map(Vec::as_slice),
                local.get(email).map(Vec::as_slice),
            ) else {
                lost.push(format!(
                    "portal {p} {email}: {} remote, {} local copies",
                    remote.get(email).map_or(0, Vec::len),
                    local.get(email).map_or(0, Vec::len)
                ));
                continue;
            };
            if let Some(title) = &want.title
                && (r["jobtitle"].as_str() != Some(title) || l.get("title").as_str() != Some(title))
            {
                lost.push(format!(
                    "portal {p} {email}: title {title} → remote {} local {}",
                    r["jobtitle"],
                    l.get("title")
                ));
            }
            if let Some(last) = &want.last_name
                && (r["lastname"].as_str() != Some(last)
                    || l.get("last_name").as_str() != Some(last))
            {
                lost.push(format!(
                    "portal {p} {email}: last name {last} → remote {} local {}",
                    r["lastname"],
                    l.get("last_name")
                ));
            }
        }
    }
    let dead_letters: u64 = {
        let mut n = 0;
        for portal in &portals {
            n += store
                .queue_depths(PortalId(*portal))
                .await
                .expect("depths")
                .dead_letters;
        }
        n
    };

    eprintln!(
        "scale-out: {portal_count} portals, {edits} edits at ~{rate}/s, settled {:.1} s after the last edit; final spread {final_spread:?} ({} live processes); \
         our requests {requests}, 429s {limited}; busiest 10 s window summed over portals {peak_sum} of {budget_sum} burst budget ({:.0}%, competing app {COMPETING_PCT}%); dead letters {dead_letters}; total {:.1} s",
        settled_in.as_secs_f64(),
        members.len(),
        100.0 * peak_sum as f64 / budget_sum as f64,
        started.elapsed().as_secs_f64()
    );
    assert!(
        diverged.is_empty(),
        "{} portals differ:\n{}",
        diverged.len(),
        diverged.join("\n")
    );
    assert!(
        lost.is_empty(),
        "{} edits lost or duplicated:\n{}",
        lost.len(),
        lost.iter().take(20).cloned().collect::<Vec<_>>().join("\n")
    );
    assert!(
        over.is_empty(),
        "portals above their burst budget in a 10 s window (portal, requests, budget): {over:?}"
    );
    assert!(
        limited <= requests / 200,
        "{limited} of {requests} requests were refused for lack of budget"
    );
    assert_eq!(dead_letters, 0, "nothing may be dead-lettered");

    store.close().await;
}

// ----- throughput -----------------------------------------------------------------------------

/// The throughput run's tiers: HubSpot's real burst budgets (100, 110, 190, 250 requests per
/// window), so that hubsync's fixed margins (a slot kept for interactive calls, two kept free
/// while another app spends the budget) weigh what they weigh on HubSpot: 1–3%.
fn throughput_tier_of(i: usize) -> Tier {
    match i % 4 {
        0 => Tier::Starter,
        1 => Tier::PublicApp,
        2 => Tier::Professional,
        _ => Tier::LimitIncrease,
    }
}

/// The throughput run's burst window: HubSpot's 10 s stretched (in the emulator and in each
/// portal's limiter alike), so that one request per record saturates every portal's real budget
/// at a rate this machine's CPU can serve for 200 portals at once.
const THROUGHPUT_WINDOW: Duration = Duration::from_secs(60);

/// Three processes, every portal with more app changes queued than its budget can carry during
/// the run (one record per request): the requests all portals receive together, per second,
/// against the sum of their budgets (what the competing app leaves of each); no portal above its
/// own budget in any window; no 429. Real tier budgets over a stretched window
/// ([`THROUGHPUT_WINDOW`]); the measurement starts after a warm-up longer than one window, so
/// the first window's burst is not counted. A measurement, not a check of behaviour: run it with
/// `--release -- --ignored --nocapture` (`HUBSYNC_SCALE_LONG=1`: 200 portals; else 30).
/// It writes its figures to `bench-results/scale-out-throughput-<portals>.json`.
#[ignore = "measurement (1–3 minutes): run with --ignored"]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn processes_sustain_the_sum_of_portal_budgets() {
    use hubsync::bench::{Metric, Report};
    let Some(db) = Database::create().await else {
        return;
    };
    let long = long_form();
    let portal_count: usize = if long { 200 } else { 30 };
    // 200 portals at one request per record: a longer window keeps the total rate (about 250
    // requests/s) within what 2 cores serve for 3 processes, PostgreSQL and the emulator.
    let window = if long {
        THROUGHPUT_WINDOW * 2
    } else {
        THROUGHPUT_WINDOW
    };
    let measure = window * 2;
    let warm_up = window + Duration::from_secs(10);
    let mut report = Report::start(
        format!("scale-out-throughput-{portal_count}"),
        format!(
            "{}cargo test --release --test scale_out_processes processes_sustain_the_sum_of_portal_budgets -- --ignored --nocapture",
            if long { "HUBSYNC_SCALE_LONG=1 " } else { "" }
        ),
        json!({"portals": portal_count, "processes": 3, "measured_s": measure.as_secs(), "bursts": [100, 110, 190, 250], "burst_window_s": window.as_secs(), "competing_share_pct": COMPETING_PCT, "outbound_batch_size": 1}),
    );

    let portals: Vec<u64> = (0..portal_count as u64).map(|i| FIRST_PORTAL + i).collect();
    let (emulator, _) = start_emulator(&portals, 0, throughput_tier_of).await;
    let admin = emulator.admin();
    admin.update_settings(|s| s.burst_window_ms = window.as_millis() as u64);
    let store: Arc<dyn Store> = hubsync_store::connect(&db.url()).await.expect("store");
    // Each portal's share per second, and a backlog that outlasts the run.
    let mut budget_per_window = BTreeMap::new();
    for (i, id) in portals.iter().enumerate() {
        let burst = throughput_tier_of(i).burst();
        let mut row = portal_row(*id, throughput_tier_of(i));
        row.config["burst_window_ms"] = json!(window.as_millis() as u64);
        store.upsert_portal(&row).await.expect("portal");
        let competing = (f64::from(burst) * COMPETING_PCT / 100.0).round() as u64;
        let ours = u64::from(burst) - competing;
        budget_per_window.insert(*id, ours);
        let backlog = (ours as f64 / window.as_secs_f64()
            * (warm_up + measure + Duration::from_secs(60)).as_secs_f64())
        .ceil() as i64;
        sqlx::query(
            "INSERT INTO contacts (portal_id, first_name, last_name, email_addresses) \
             SELECT $1, 'Bulk', 'n' || g, jsonb_build_array('b' || g || '-' || $1 || '@bulk.example') \
             FROM generate_series(1, $2) AS g",
        )
        .bind(*id as i64)
        .bind(backlog)
        .execute(&db.pool)
        .await
        .expect("backlog");
    }
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("tempdir");
    let mut cluster = Cluster {
        base: ServeSpec {
            database_url: db.url(),
            hubspot_url: emulator.base_url(),
            port: 0,
            webhook_secret: WEBHOOK_SECRET.to_owned(),
            workdir: dir.path().to_owned(),
            env: vec![
                ("HUBSYNC_OUTBOUND__BATCH_SIZE".into(), "1".into()),
                ("HUBSYNC_RECONCILE__INTERVAL_SECS".into(), "3600".into()),
                (
                    "HUBSYNC_DATABASE__POOL_SIZE".into(),
                    if long { "24" } else { "10" }.into(),
                ),
            ],
        },
        processes: BTreeMap::new(),
        spawned: 0,
    };
    for name in ["p1", "p2", "p3"] {
        cluster.spawn(name);
    }
    for name in ["p1", "p2", "p3"] {
        cluster
            .process(name)
            .wait_ready(Duration::from_secs(60))
            .await;
    }
    let ready = Instant::now();
    loop {
        let (owned, _) = db.ownership().await;
        if owned.len() == portal_count {
            break;
        }
        assert!(
            ready.elapsed() < Duration::from_secs(120),
            "only {} of {portal_count} portals owned after 120 s",
            owned.len()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let owned_in = ready.elapsed();
    tokio::time::sleep(warm_up).await;
    admin.reset_stats();
    let mut sampler = Sampler::default();
    sampler.sample(&admin);
    let started = Instant::now();
    while started.elapsed() < measure {
        tokio::time::sleep(Duration::from_secs(1)).await;
        sampler.sample(&admin);
        cluster.assert_running();
    }
    let measured = started.elapsed();
    let (_, last) = sampler.samples.last().cloned().expect("samples");
    let stats = admin.stats();
    let busiest = sampler.busiest_window(window);
    // A portal whose backlog ran dry idled for lack of work, not of budget: its queue (claimed
    // items included) is empty.
    let mut drained = Vec::new();
    for portal in &portals {
        let (left,): (i64,) = sqlx::query_as("SELECT count(*) FROM outbox WHERE portal_id = $1")
            .bind(*portal as i64)
            .fetch_one(&db.pool)
            .await
            .expect("outbox count");
        if left == 0 {
            drained.push(*portal);
        }
    }
    for name in ["p1", "p2", "p3"] {
        cluster
            .process(name)
            .terminate(Duration::from_secs(40))
            .await;
    }

    let requests: u64 = last.values().sum();
    let limited: u64 = portals
        .iter()
        .map(|p| stats.portal(*p).rate_limited.values().sum::<u64>())
        .sum();
    let budget_rate: f64 = budget_per_window.values().sum::<u64>() as f64 / window.as_secs_f64();
    let rate = requests as f64 / measured.as_secs_f64();
    let over: Vec<(u64, u64, u64)> = portals
        .iter()
        .filter_map(|p| {
            let peak = busiest.get(p).copied().unwrap_or(0);
            let allowed = budget_per_window[p];
            (peak > allowed).then_some((*p, peak, allowed))
        })
        .collect();
    let mut ratios: Vec<f64> = portals
        .iter()
        .map(|p| {
            last.get(p).copied().unwrap_or(0) as f64
                / measured.as_secs_f64()
                / (budget_per_window[p] as f64 / window.as_secs_f64())
        })
        .collect();
    ratios.sort_by(f64::total_cmp);
    let [load1, _, _] = hubsync::bench::report::load_average();

    report.metric(Metric::new(
        "portals owned after the processes were ready",
        hubsync::bench::report::round(owned_in.as_secs_f64(), 1),
        "s",
    ));
    report.metric(
        Metric::new(
            "requests/s, all portals",
            hubsync::bench::report::round(rate, 1),
            "requests/s",
        )
        .bound(hubsync::bench::report::round(budget_rate, 1))
        .target(format!("≥ 90% of {budget_rate:.1}"), |v| {
            v >= 0.9 * budget_rate
        }),
    );
    report.metric(Metric::new(
        "slowest portal: share of its own budget",
        hubsync::bench::report::round(ratios.first().copied().unwrap_or(0.0), 3),
        "ratio",
    ));
    report.metric(Metric::new(
        "median portal: share of its own budget",
        hubsync::bench::report::round(ratios.get(ratios.len() / 2).copied().unwrap_or(0.0), 3),
        "ratio",
    ));
    report.metric(
        Metric::new(
            "portals above their budget in a window",
            over.len() as f64,
            "portals",
        )
        .target("0", |v| v == 0.0),
    );
    report.metric(Metric::new("429 answers", limited as f64, "answers").target("0", |v| v == 0.0));
    report.metric(
        Metric::new(
            "portals whose backlog ran out before the end",
            drained.len() as f64,
            "portals",
        )
        .target("0", |v| v == 0.0),
    );
    report.note(format!(
        "3 `hubsync serve` processes (debug or release as built), one PostgreSQL, {portal_count} emulated portals with HubSpot's bursts of 100/110/190/250 requests over a {} s window (HubSpot's 10 s, stretched in the emulator and the limiters alike) and a competing app holding {COMPETING_PCT}% of each; outbound batch size 1, so one request carries one record and every portal's queue outlasts the run; measured over {:.0} s after a {}-s warm-up; 1-minute load average {load1:.1} at the end (2 shared cores)",
        window.as_secs(),
        measured.as_secs_f64(),
        warm_up.as_secs()
    ));
    let report = report.finish();
    report.print();
    let out = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("bench-results");
    match report.write(&out) {
        Ok(path) => eprintln!("wrote {}", path.display()),
        Err(error) => eprintln!("could not write the report: {error}"),
    }
    assert!(over.is_empty(), "portals above their budget: {over:?}");
    assert_eq!(limited, 0, "429 answers");
    store.close().await;
}
