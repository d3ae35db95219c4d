//! The end-to-end test bed: a HubSpot emulator on 127.0.0.1:0, a real SQLite store in a
//! temporary directory, and an engine wired to both — the same parts `hubsync demo` uses.

#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use hubsync_core::{AppId, FieldMap, ObjectType, PortalId};
use hubsync_emulator::{Emulator, EmulatorConfig, EmulatorHandle, ObjectKind, PortalConfig};
use hubsync_engine::{Engine, EngineSettings, inbound, outbound, setup};
use hubsync_hubspot::{ClientConfig, HubspotClient};
use hubsync_mapping::Mappings;
use hubsync_store::{Portal, PortalAuth, PortalStatus, Store};
use serde_json::{Value, json};

pub const PORTAL: u64 = 62515;
pub const APP: u64 = 54321;
pub const TOKEN: &str = "pat-na1-00000000-test-token";

pub const WEBHOOK_SECRET: &str = "webhook-secret";

pub struct TestBed {
    pub emulator: EmulatorHandle,
    pub engine: Engine,
    pub portal: PortalId,
    /// The hubsync server's base URL, when started with [`TestBed::serve`].
    pub server_url: Option<String>,
    _dir: tempfile::TempDir,
}

impl TestBed {
    /// A bed with one portal whose webhooks go nowhere (tests feed the inbox themselves or
    /// start a server).
    pub async fn start() -> TestBed {
        Self::start_with(|_| {}).await
    }

    pub async fn start_with(configure: impl FnOnce(&mut PortalConfig)) -> TestBed {
        let mut portal_cfg = PortalConfig::new(PORTAL, APP);
        portal_cfg.private_app_token = Some(TOKEN.to_owned());
        portal_cfg.webhook_secret = WEBHOOK_SECRET.to_owned();
        configure(&mut portal_cfg);
        let config = EmulatorConfig {
            portals: vec![portal_cfg],
            ..EmulatorConfig::default()
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let emulator = Emulator::start(config, listener).await.expect("emulator");

        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!(
            "sqlite://{}?mode=rwc",
            dir.path().join("hubsync.db").display()
        );
        let store: Arc<dyn Store> = hubsync_store::connect(&url).await.expect("store");
        let portal = Portal {
            portal_id: PortalId(PORTAL),
            name: "test".into(),
            app_id: Some(AppId(APP)),
            auth: PortalAuth(json!({"kind": "private_app", "token": TOKEN})),
            status: PortalStatus::Active,
            status_reason: None,
            config: json!({"burst_tier": 100}),
            created_at: 0,
        };
        store.upsert_portal(&portal).await.expect("portal");
        let hubspot =
            HubspotClient::new(ClientConfig::with_base_url(emulator.base_url())).expect("client");
        let settings = EngineSettings {
            app_id: Some(AppId(APP)),
            ..EngineSettings::default()
        };
        let engine = Engine {
            store,
            mappings: Arc::new(Mappings::embedded().expect("mappings")),
            hubspot,
            settings: Arc::new(settings),
        };
        setup::connect_portal(&engine, &portal, None)
            .await
            .expect("connect portal");
        TestBed {
            emulator,
            engine,
            portal: PortalId(PORTAL),
            server_url: None,
            _dir: dir,
        }
    }

    /// Starts hubsync's HTTP server (webhook receiver and API) on 127.0.0.1:0 and points the
    /// emulator's webhooks at it.
    pub async fn serve(&mut self) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let webhook =
            hubsync_server::WebhookConfig::new(secrecy::SecretString::from(WEBHOOK_SECRET));
        let config = hubsync_server::ServerConfig::new(url.clone(), Some(webhook));
        let router = hubsync_server::router(self.engine.clone(), config, None);
        tokio::spawn(async move {
            let _ = hubsync_server::run(listener, router, std::future::pending()).await;
        });
        self.emulator
            .admin()
            .set_webhook(
                PORTAL,
                Some(format!("{url}{}", hubsync_server::WEBHOOK_PATH)),
                None,
            )
            .expect("set webhook");
        self.server_url = Some(url);
    }

    /// Waits until the emulator has delivered every webhook, then applies the inbox.
    pub async fn settle_inbound(&self) {
        assert!(
            self.emulator
                .admin()
                .wait_webhooks_idle(Duration::from_secs(20))
                .await,
            "webhooks never went idle"
        );
        self.apply_all().await;
    }

    pub async fn counter(&self, name: &str) -> i64 {
        self.store()
            .counters(self.portal)
            .await
            .expect("counters")
            .get(name)
            .copied()
            .unwrap_or(0)
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.engine.store
    }

    /// Inserts a record as the app would (captured by the triggers).
    pub async fn app_insert(&self, ty: ObjectType, unified: Value) -> hubsync_core::LocalId {
        let fields = FieldMap::from_unified(&unified);
        self.store()
            .insert_record(self.portal, ty, &fields)
            .await
            .expect("insert")
            .local_id
    }

    /// Drains the outbox completely; returns the total HubSpot calls made.
    pub async fn push_all(&self) -> usize {
        let mut calls = 0;
        for _ in 0..1000 {
            let step = outbound::push_once(&self.engine, self.portal)
                .await
                .expect("push");
            calls += step.calls;
            if step.is_idle() {
                return calls;
            }
        }
        panic!("outbox never drained");
    }

    /// Applies the inbox until it is empty.
    pub async fn apply_all(&self) {
        for _ in 0..1000 {
            let step = inbound::apply_once(&self.engine, self.portal)
                .await
                .expect("apply");
            if step.is_idle() {
                return;
            }
        }
        panic!("inbox never drained");
    }

    /// Write calls the emulator counted for this portal (batch create/update/upsert/archive).
    pub fn write_calls(&self) -> u64 {
        let stats = self.emulator.admin().stats().portal(PORTAL);
        stats
            .requests_by_operation
            .iter()
            .filter(|(op, _)| {
                [
                    "batch_create",
                    "batch_update",
                    "batch_upsert",
                    "batch_archive",
                ]
                .iter()
                .any(|w| op.ends_with(w))
            })
            .map(|(_, n)| n)
            .sum()
    }

    pub fn remote(&self, kind: ObjectKind, id: u64) -> Option<Value> {
        self.emulator
            .admin()
            .get(PORTAL, kind, id)
            .expect("emulator get")
    }

    pub fn remote_count(&self, kind: ObjectKind) -> usize {
        self.emulator.admin().count(PORTAL, kind).expect("count")
    }
}

/// Polls `f` until it returns `Some`, or panics after `timeout`.
pub async fn eventually<T>(timeout: Duration, mut f: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "condition not met within {timeout:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

// ----- reliability suite: `hubsync serve` as a child process --------------------------------

/// Whether the long form of the reliability suite was asked for (`HUBSYNC_RELIABILITY_LONG=1`).
pub fn reliability_long() -> bool {
    std::env::var("HUBSYNC_RELIABILITY_LONG").is_ok_and(|v| v == "1" || v == "true")
}

/// A free TCP port on 127.0.0.1 (bound, read, released; `hubsync serve` binds it again with
/// SO_REUSEADDR, so a restarted process gets the same address and the emulator's webhook target
/// stays valid).
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}

/// How to start `target/debug/hubsync serve`.
#[derive(Debug, Clone)]
pub struct ServeSpec {
    /// `sqlite://…` or `postgres://…`.
    pub database_url: String,
    /// The emulator's base URL.
    pub hubspot_url: String,
    /// The port `serve` listens on (127.0.0.1).
    pub port: u16,
    /// The webhook signing secret.
    pub webhook_secret: String,
    /// Working directory (so no stray ./hubsync.toml is read); the log goes here too.
    pub workdir: std::path::PathBuf,
    /// Further `HUBSYNC_…` settings (e.g. lease lengths).
    pub env: Vec<(String, String)>,
}

impl ServeSpec {
    /// The server's base URL.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The webhook target to give the emulator.
    pub fn webhook_target(&self) -> String {
        format!("{}{}", self.url(), hubsync_server::WEBHOOK_PATH)
    }
}

/// A running `hubsync serve` child; its stdout and stderr go to `serve-<n>.log` in the workdir.
#[derive(Debug)]
pub struct ServeProcess {
    pub child: std::process::Child,
    pub log: std::path::PathBuf,
    pub url: String,
}

impl ServeProcess {
    /// Starts the binary built for this test run.
    pub fn spawn(spec: &ServeSpec, generation: usize) -> ServeProcess {
        let log = spec.workdir.join(format!("serve-{generation}.log"));
        let out = std::fs::File::create(&log).expect("log file");
        let err = out.try_clone().expect("log file");
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_hubsync"));
        cmd.arg("serve")
            .current_dir(&spec.workdir)
            .env_remove("HUBSYNC_CONFIG")
            .env("HUBSYNC_DATABASE_URL", &spec.database_url)
            .env("HUBSYNC_HUBSPOT__BASE_URL", &spec.hubspot_url)
            .env("HUBSYNC_HUBSPOT__APP_ID", APP.to_string())
            .env("HUBSYNC_SERVER__LISTEN", format!("127.0.0.1:{}", spec.port))
            .env("HUBSYNC_SERVER__PUBLIC_URL", spec.url())
            .env("HUBSYNC_WEBHOOKS__CLIENT_SECRET", &spec.webhook_secret)
            .env(
                "RUST_LOG",
                std::env::var("HUBSYNC_TEST_LOG").unwrap_or_else(|_| "info".into()),
            )
            .stdin(std::process::Stdio::null())
            .stdout(out)
            .stderr(err);
        for (k, v) in &spec.env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().expect("spawn hubsync serve");
        ServeProcess {
            child,
            log,
            url: spec.url(),
        }
    }

    /// Waits until `/healthz` answers 200; panics with the log if the process exits first.
    pub async fn wait_ready(&mut self, timeout: Duration) {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()
            .expect("client");
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                panic!(
                    "hubsync serve exited early ({status}):\n{}",
                    self.log_text()
                );
            }
            if let Ok(r) = client.get(format!("{}/healthz", self.url)).send().await
                && r.status().is_success()
            {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "hubsync serve not ready within {timeout:?}:\n{}",
                self.log_text()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// SIGKILL, then reap.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM (graceful shutdown), then wait up to `timeout`; SIGKILL after that. Returns the
    /// exit status if it stopped by itself.
    pub async fn terminate(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let _ = std::process::Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return Some(status);
            }
            if tokio::time::Instant::now() > deadline {
                self.kill();
                return None;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for ServeProcess {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            self.kill();
        }
    }
}

/// An engine in the test process over an existing store, for checks (convergence, reconcile).
pub async fn checking_engine(store: Arc<dyn Store>, hubspot_url: &str, portal: &Portal) -> Engine {
    let hubspot =
        HubspotClient::new(ClientConfig::with_base_url(hubspot_url.to_owned())).expect("client");
    let settings = EngineSettings {
        app_id: Some(AppId(APP)),
        ..EngineSettings::default()
    };
    let engine = Engine {
        store,
        mappings: Arc::new(Mappings::embedded().expect("mappings")),
        hubspot,
        settings: Arc::new(settings),
    };
    setup::connect_portal(&engine, portal, None)
        .await
        .expect("connect portal");
    engine
}

/// The private-app portal row the reliability tests store before starting `serve`.
pub fn private_portal(burst_tier: u32) -> Portal {
    Portal {
        portal_id: PortalId(PORTAL),
        name: "reliability".into(),
        app_id: Some(AppId(APP)),
        auth: PortalAuth(json!({"kind": "private_app", "token": TOKEN})),
        status: PortalStatus::Active,
        status_reason: None,
        config: json!({"burst_tier": burst_tier}),
        created_at: 0,
    }
}

/// Prints a convergence report's failures in a readable form (for assertion messages).
pub fn describe_convergence(c: &hubsync_engine::converge::Convergence) -> String {
    let mut out = String::new();
    for (ty, t) in &c.types {
        out.push_str(&format!(
            "{ty}: local {} remote {} equal {} differ {} missing-local {} missing-remote {} dup-links {}\n",
            t.local_live,
            t.remote_live,
            t.equal,
            t.differences.len(),
            t.missing_locally.len(),
            t.missing_remotely.len(),
            t.duplicate_links.len()
        ));
        for d in t.differences.iter().take(5) {
            out.push_str(&format!(
                "  local {} / hubspot {}: {:?}\n",
                d.local_id.0, d.hubspot_id, d.fields
            ));
        }
        for id in t.missing_locally.iter().take(5) {
            out.push_str(&format!("  missing locally: hubspot {id}\n"));
        }
        for id in t.missing_remotely.iter().take(5) {
            out.push_str(&format!("  missing in hubspot: local {}\n", id.0));
        }
    }
    if !c.duplicate_emails.is_empty() {
        out.push_str(&format!(
            "duplicate emails in HubSpot: {:?}\n",
            c.duplicate_emails
        ));
    }
    out
}

// ----- reliability suite: per-test PostgreSQL databases ---------------------------------------

/// A uniquely named database on the local PostgreSQL server (postgres://postgres@127.0.0.1:5432,
/// trust auth), created for one test and dropped by [`TestDatabase::drop_database`].
#[derive(Debug)]
pub struct TestDatabase {
    pub name: String,
    admin: sqlx::PgPool,
}

impl TestDatabase {
    /// The server's admin URL.
    pub const SERVER: &'static str = "postgres://postgres@127.0.0.1:5432/postgres";

    /// Creates the database. When no server answers: `None` with a notice, or a panic when
    /// `CI=true` (CI must run the PostgreSQL scenarios).
    pub async fn create(prefix: &str) -> Option<TestDatabase> {
        let options = sqlx::postgres::PgPoolOptions::new()
            .max_connections(2)
            .acquire_timeout(Duration::from_secs(5));
        let admin = match options.connect(Self::SERVER).await {
            Ok(pool) => pool,
            Err(error) => {
                assert!(
                    std::env::var("CI").as_deref() != Ok("true"),
                    "CI=true but PostgreSQL at 127.0.0.1:5432 does not answer: {error}"
                );
                eprintln!("NOTICE: skipped — no PostgreSQL at 127.0.0.1:5432 ({error})");
                return None;
            }
        };
        let name = format!(
            "hubsync_{prefix}_{}_{}",
            std::process::id(),
            rand::random::<u32>()
        );
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&admin)
            .await
            .expect("create database");
        Some(TestDatabase { name, admin })
    }

    /// The database's URL.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:5432/{}", self.name)
    }

    /// The URL with a password in it (trust auth ignores it; the leak checks look for it).
    pub fn url_with_password(&self, password: &str) -> String {
        format!(
            "postgres://postgres:{password}@127.0.0.1:5432/{}",
            self.name
        )
    }

    /// Cuts every connection to the database (as a failover or a network cut would); returns
    /// how many were cut.
    pub async fn terminate_connections(&self) -> i64 {
        let cut: Vec<(bool,)> = sqlx::query_as("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()")
            .bind(&self.name)
            .fetch_all(&self.admin)
            .await
            .expect("terminate");
        cut.iter().filter(|(ok,)| *ok).count() as i64
    }

    /// Blocks new connections (`ALLOW_CONNECTIONS false`) or allows them again.
    pub async fn allow_connections(&self, allow: bool) {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "ALTER DATABASE {} WITH ALLOW_CONNECTIONS {allow}",
            self.name
        )))
        .execute(&self.admin)
        .await
        .expect("alter database");
    }

    /// Drops the database, cutting whatever still uses it.
    pub async fn drop_database(self) {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            self.name
        )))
        .execute(&self.admin)
        .await
        .expect("drop database");
        self.admin.close().await;
    }
}

// ----- reliability suite: both sides editing, with a marker per edit ---------------------------

/// Two editors — a person in HubSpot (the emulator's admin API) and the app (writes through the
/// store, captured by the triggers) — and the check that no edit was lost.
pub mod twoway {
    use std::collections::BTreeMap;
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use hubsync_core::{Changes, FieldMap, HubspotId, LocalId, ObjectType, PortalId};
    use hubsync_emulator::{DEFAULT_USER_ID, ObjectKind};
    use hubsync_store::Store;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};
    use serde_json::{Value, json};

    use super::{PORTAL, ServeProcess};

    /// The last marker each side wrote, per record (keyed by its email, which nobody edits).
    #[derive(Debug, Default, Clone)]
    pub struct Expected {
        /// Written by HubSpot users (`jobtitle`), or by the app when it created the record.
        pub title: Option<String>,
        /// Written by the app (`last_name`), or by the HubSpot user who created the record.
        pub last_name: Option<String>,
    }

    #[derive(Debug, Default)]
    pub struct Figures {
        pub remote_edits: u64,
        pub local_edits: u64,
        pub local_creates: u64,
        pub remote_creates: u64,
        pub skipped: u64,
    }

    /// The two sides' editors: a person in HubSpot (emulator admin API) and the app (SQL writes
    /// through the store, captured by the triggers).
    pub struct Editors {
        pub rng: StdRng,
        pub seq: u64,
        pub admin: hubsync_emulator::Admin,
        pub store: Arc<dyn Store>,
        pub portal: PortalId,
        pub expected: BTreeMap<String, Expected>,
        /// Records created in HubSpot (seeded or by a person): (email, HubSpot id).
        pub remote: Vec<(String, u64)>,
        /// Records the app created: (email, local id).
        pub local: Vec<(String, LocalId)>,
        pub figures: Figures,
    }

    impl Editors {
        pub fn marker(&mut self, side: &str) -> String {
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
        pub async fn step(&mut self) {
            let roll: f64 = self.rng.random();
            if roll < 0.40 {
                // A person edits a title in HubSpot (a seeded record, or one the app created).
                let target = if self.rng.random_bool(0.8) || self.local.is_empty() {
                    let (email, id) =
                        self.remote[self.rng.random_range(0..self.remote.len())].clone();
                    Some((email, id))
                } else {
                    let (email, local_id) =
                        self.local[self.rng.random_range(0..self.local.len())].clone();
                    self.hubspot_id_of(local_id).await.map(|id| (email, id))
                };
                let Some((email, id)) = target else {
                    self.figures.skipped += 1;
                    return;
                };
                let marker = self.marker("r");
                self.admin
                    .update(
                        PORTAL,
                        ObjectKind::Contact,
                        id,
                        [("jobtitle", marker.clone())],
                        DEFAULT_USER_ID,
                    )
                    .expect("remote edit");
                self.expected.entry(email).or_default().title = Some(marker);
                self.figures.remote_edits += 1;
            } else if roll < 0.80 {
                // The app edits a last name (a record it imported, or one it created).
                let target = if self.rng.random_bool(0.7) || self.local.is_empty() {
                    let (email, id) =
                        self.remote[self.rng.random_range(0..self.remote.len())].clone();
                    self.local_id_of(id).await.map(|l| (email, l))
                } else {
                    let (email, local_id) =
                        self.local[self.rng.random_range(0..self.local.len())].clone();
                    Some((email, local_id))
                };
                let Some((email, local_id)) = target else {
                    self.figures.skipped += 1;
                    return;
                };
                let marker = self.marker("l");
                let changes: Changes = [("last_name".to_owned(), json!(marker))]
                    .into_iter()
                    .collect();
                let updated = self
                    .store
                    .update_record(self.portal, ObjectType::Contacts, local_id, &changes)
                    .await
                    .expect("local edit");
                assert!(updated.is_some(), "local row {} vanished", local_id.0);
                self.expected.entry(email).or_default().last_name = Some(marker);
                self.figures.local_edits += 1;
            } else if roll < 0.90 {
                let marker = self.marker("lc");
                let email = format!("{marker}@app.crash.example");
                let fields = FieldMap::from_unified(
                    &json!({"first_name": "App", "last_name": marker, "title": marker, "email_addresses": [email]}),
                );
                let row = self
                    .store
                    .insert_record(self.portal, ObjectType::Contacts, &fields)
                    .await
                    .expect("local create");
                self.expected.insert(
                    email.clone(),
                    Expected {
                        title: Some(marker.clone()),
                        last_name: Some(marker),
                    },
                );
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
                        [
                            ("email", email.clone()),
                            ("firstname", "Hub".to_owned()),
                            ("lastname", marker.clone()),
                            ("jobtitle", marker.clone()),
                        ],
                        DEFAULT_USER_ID,
                    )
                    .expect("remote create");
                self.expected.insert(
                    email.clone(),
                    Expected {
                        title: Some(marker.clone()),
                        last_name: Some(marker),
                    },
                );
                self.remote.push((email, id));
                self.figures.remote_creates += 1;
            }
        }

        /// Edits until `until`, at roughly `per_second` edits a second.
        pub async fn run_until(&mut self, until: Instant, per_second: u32) {
            let gap = Duration::from_secs(1) / per_second.max(1);
            while Instant::now() < until {
                self.step().await;
                tokio::time::sleep(gap).await;
            }
        }
    }

    /// Every live HubSpot contact: (email, id, properties).
    pub fn remote_contacts(admin: &hubsync_emulator::Admin) -> Vec<(String, u64, Value)> {
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
    pub async fn local_contacts(store: &Arc<dyn Store>) -> BTreeMap<String, Vec<FieldMap>> {
        let mut out: BTreeMap<String, Vec<FieldMap>> = BTreeMap::new();
        let mut after = None;
        loop {
            let rows = store
                .list_records(PortalId(PORTAL), ObjectType::Contacts, after, 500, &[])
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

    /// Waits until the emulator has nothing left to deliver and both queues stay empty.
    pub async fn wait_quiet(
        admin: &hubsync_emulator::Admin,
        store: &Arc<dyn Store>,
        serve: &mut ServeProcess,
        timeout: Duration,
    ) {
        let deadline = Instant::now() + timeout;
        let mut quiet = 0;
        while quiet < 3 {
            admin.wait_webhooks_idle(Duration::from_secs(10)).await;
            let depths = store.queue_depths(PortalId(PORTAL)).await.expect("depths");
            let pending = admin.webhooks_pending(PORTAL).expect("pending");
            quiet = if depths.outbox == 0 && depths.inbox == 0 && pending == 0 {
                quiet + 1
            } else {
                0
            };
            if let Some(status) = serve.child.try_wait().expect("try_wait") {
                panic!(
                    "hubsync serve exited ({status}) while settling:\n{}",
                    serve.log_text()
                );
            }
            assert!(
                Instant::now() < deadline,
                "queues did not drain within {timeout:?}: {depths:?}, {pending} webhooks pending"
            );
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }

    impl Editors {
        /// Editors over `remote` (HubSpot's existing contacts), seeded.
        pub fn new(
            seed: u64,
            admin: hubsync_emulator::Admin,
            store: Arc<dyn Store>,
            remote: Vec<(String, u64)>,
        ) -> Editors {
            Editors {
                rng: StdRng::seed_from_u64(seed),
                seq: 0,
                admin,
                store,
                portal: PortalId(PORTAL),
                expected: BTreeMap::new(),
                remote,
                local: Vec::new(),
                figures: Figures::default(),
            }
        }

        /// The app creates `n` contacts of its own.
        pub async fn app_creates(&mut self, n: usize) {
            for _ in 0..n {
                let marker = self.marker("lc");
                let email = format!("{marker}@app.reliability.example");
                let fields = FieldMap::from_unified(
                    &json!({"first_name": "App", "last_name": marker, "title": marker, "email_addresses": [email]}),
                );
                let row = self
                    .store
                    .insert_record(self.portal, ObjectType::Contacts, &fields)
                    .await
                    .expect("insert");
                self.expected.insert(
                    email.clone(),
                    Expected {
                        title: Some(marker.clone()),
                        last_name: Some(marker),
                    },
                );
                self.local.push((email, row.local_id));
            }
        }

        /// Every record whose last markers are not exactly once on both sides, described.
        pub async fn lost_edits(&self) -> Vec<String> {
            let remote_by_email: BTreeMap<String, Vec<Value>> = remote_contacts(&self.admin)
                .into_iter()
                .fold(BTreeMap::new(), |mut m, (e, _, p)| {
                    m.entry(e).or_default().push(p);
                    m
                });
            let local_by_email = local_contacts(&self.store).await;
            let mut lost = Vec::new();
            for (email, want) in &self.expected {
                let remote = remote_by_email.get(email).map(Vec::as_slice).unwrap_or(&[]);
                let local = local_by_email.get(email).map(Vec::as_slice).unwrap_or(&[]);
                if remote.len() != 1 || local.len() != 1 {
                    lost.push(format!(
                        "{email}: {} in HubSpot, {} locally",
                        remote.len(),
                        local.len()
                    ));
                    continue;
                }
                let (r, l) = (&remote[0], &local[0]);
                if let Some(title) = &want.title
                    && (r["jobtitle"].as_str() != Some(title)
                        || l.get("title").as_str() != Some(title))
                {
                    lost.push(format!(
                        "{email}: title {title} — HubSpot {}, local {}",
                        r["jobtitle"],
                        l.get("title")
                    ));
                }
                if let Some(name) = &want.last_name
                    && (r["lastname"].as_str() != Some(name)
                        || l.get("last_name").as_str() != Some(name))
                {
                    lost.push(format!(
                        "{email}: last_name {name} — HubSpot {}, local {}",
                        r["lastname"],
                        l.get("last_name")
                    ));
                }
            }
            lost
        }
    }
}
