//! Shared harness of the unified API tests: the router served on loopback over a real SQLite
//! store, with the HubSpot emulator behind the engine's client, two portals and a key each.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use hubsync_core::{ObjectType, PortalId};
use hubsync_emulator::{Emulator, EmulatorConfig, EmulatorHandle, PortalConfig};
use hubsync_engine::{Engine, EngineSettings};
use hubsync_hubspot::model::PropertyCreate;
use hubsync_hubspot::{ClientConfig, HubspotClient};
use hubsync_mapping::Mappings;
use hubsync_server::unified::{UnifiedConfig, create_api_key, router_with};
use hubsync_store::{Portal, PortalAuth, PortalStatus};
use reqwest::header::HeaderMap;
use serde_json::{Value, json};

pub const PORTAL: PortalId = PortalId(62515);
pub const OTHER_PORTAL: PortalId = PortalId(77001);
pub const TOKEN: &str = "pat-na1-aaaaaaaa-1111-2222-3333-444444444444";
pub const OTHER_TOKEN: &str = "pat-na1-bbbbbbbb-1111-2222-3333-444444444444";

/// One answer.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Value,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The error code of an error answer.
    pub fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("")
    }
}

pub struct Harness {
    pub base: String,
    pub http: reqwest::Client,
    pub engine: Engine,
    pub emulator: EmulatorHandle,
    /// A key scoped to [`PORTAL`].
    pub key: String,
    /// A key scoped to [`OTHER_PORTAL`].
    pub other_key: String,
    workers: Vec<tokio::task::JoinHandle<()>>,
    server: tokio::task::JoinHandle<()>,
    _dir: tempfile::TempDir,
    /// The PostgreSQL database to drop, for a harness on PostgreSQL.
    pg_database: Option<String>,
}

impl Drop for Harness {
    fn drop(&mut self) {
        for w in &self.workers {
            w.abort();
        }
        self.server.abort();
        if let Some(db) = self.pg_database.take() {
            let _ = psql(&format!("DROP DATABASE IF EXISTS \"{db}\" WITH (FORCE)"));
        }
    }
}

/// Runs one statement with `psql` against the test server's `postgres` database.
fn psql(sql: &str) -> Result<(), String> {
    let out = std::process::Command::new("psql")
        .args([
            "-h",
            "127.0.0.1",
            "-U",
            "postgres",
            "-d",
            "postgres",
            "-v",
            "ON_ERROR_STOP=1",
            "-c",
            sql,
        ])
        .output()
        .map_err(|e| format!("cannot run psql: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// A harness on a fresh PostgreSQL database (127.0.0.1:5432, user postgres), or `None` when
/// PostgreSQL is not there (a failure under `CI=true`).
pub async fn start_pg() -> Option<Harness> {
    let database = format!(
        "hubsync_unified_{}_{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    );
    if let Err(e) = psql(&format!("CREATE DATABASE \"{database}\"")) {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("PostgreSQL is required under CI=true: {e}");
        }
        eprintln!("skipping PostgreSQL: {e}");
        return None;
    }
    let url = format!("postgres://postgres@127.0.0.1:5432/{database}");
    let mut h = start_on(&url, default_config()).await;
    h.pg_database = Some(database);
    Some(h)
}

fn portal_row(id: PortalId, token: &str) -> Portal {
    Portal {
        portal_id: id,
        name: format!("portal {id}"),
        app_id: None,
        auth: PortalAuth(json!({"kind": "private_app", "token": token})),
        status: PortalStatus::Active,
        status_reason: None,
        config: json!({}),
        created_at: 0,
    }
}

fn default_config() -> UnifiedConfig {
    UnifiedConfig {
        wait_timeout: Duration::from_secs(10),
        wait_poll: Duration::from_millis(20),
        auth_cache_ttl: Duration::ZERO,
        remote_max_wait: Duration::from_secs(2),
    }
}

/// A harness on a SQLite store in a temporary directory.
pub async fn start() -> Harness {
    start_with(default_config()).await
}

/// A harness on SQLite with these API settings.
pub async fn start_with(config: UnifiedConfig) -> Harness {
    start_on("", config).await
}

/// A harness on the store at `store_url` (empty: SQLite in a temporary directory).
pub async fn start_on(store_url: &str, config: UnifiedConfig) -> Harness {
    let mut p1 = PortalConfig::new(PORTAL.get(), 54321);
    p1.private_app_token = Some(TOKEN.into());
    let mut p2 = PortalConfig::new(OTHER_PORTAL.get(), 54321);
    p2.private_app_token = Some(OTHER_TOKEN.into());
    let emulator = Emulator::start(
        EmulatorConfig {
            portals: vec![p1, p2],
            ..EmulatorConfig::default()
        },
        tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap(),
    )
    .await
    .unwrap();
    emulator
        .admin()
        .update_settings(|s| s.search_per_second = 10_000);

    let dir = tempfile::tempdir().unwrap();
    let url = if store_url.is_empty() {
        format!(
            "sqlite://{}?mode=rwc",
            dir.path().join("hubsync.db").display()
        )
    } else {
        store_url.to_owned()
    };
    let store = hubsync_store::connect(&url).await.unwrap();
    let engine = Engine {
        store: Arc::clone(&store),
        mappings: Arc::new(Mappings::embedded().unwrap()),
        hubspot: HubspotClient::new(ClientConfig::with_base_url(emulator.base_url())).unwrap(),
        settings: Arc::new(EngineSettings::default()),
    };
    for (id, token) in [(PORTAL, TOKEN), (OTHER_PORTAL, OTHER_TOKEN)] {
        let row = portal_row(id, token);
        store.upsert_portal(&row).await.unwrap();
        hubsync_engine::setup::connect_portal(&engine, &row, None)
            .await
            .unwrap();
    }
    let key = create_api_key(store.as_ref(), "app", &[PORTAL])
        .await
        .unwrap();
    let other_key = create_api_key(store.as_ref(), "other app", &[OTHER_PORTAL])
        .await
        .unwrap();

    let app = router_with(engine.clone(), config);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let server = tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    Harness {
        base,
        http: reqwest::Client::new(),
        engine,
        emulator,
        key,
        other_key,
        workers: Vec::new(),
        server,
        _dir: dir,
        pg_database: None,
    }
}

impl Harness {
    /// Sends a request as the app ([`PORTAL`] with its key).
    pub async fn call(&self, method: &str, path: &str, body: Option<Value>) -> Resp {
        self.call_as(&self.key, PORTAL, method, path, body).await
    }

    /// Sends a request with a key and a portal header.
    pub async fn call_as(
        &self,
        key: &str,
        portal: PortalId,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> Resp {
        let mut req = self
            .http
            .request(method.parse().unwrap(), format!("{}{path}", self.base))
            .bearer_auth(key)
            .header("x-hubsync-portal", portal.to_string());
        if let Some(body) = body {
            req = req.json(&body);
        }
        self.send(req).await
    }

    /// Sends a prepared request.
    pub async fn send(&self, req: reqwest::RequestBuilder) -> Resp {
        let r = req.send().await.unwrap();
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        let text = r.text().await.unwrap();
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"))
        };
        Resp {
            status,
            headers,
            body,
        }
    }

    pub async fn get(&self, path: &str) -> Resp {
        self.call("GET", path, None).await
    }

    pub async fn post(&self, path: &str, body: Value) -> Resp {
        self.call("POST", path, Some(body)).await
    }

    pub async fn patch(&self, path: &str, body: Value) -> Resp {
        self.call("PATCH", path, Some(body)).await
    }

    pub async fn delete(&self, path: &str) -> Resp {
        self.call("DELETE", path, None).await
    }

    /// Runs the outbound worker of [`PORTAL`] in the background until the harness drops.
    pub fn run_outbound(&mut self) {
        let engine = self.engine.clone();
        self.workers.push(tokio::spawn(async move {
            loop {
                let _ = hubsync_engine::outbound::push_once(&engine, PORTAL).await;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }));
    }

    /// Creates a custom property in the emulated HubSpot.
    pub async fn create_property(&self, ty: ObjectType, name: &str, numeric: bool) {
        let api = self.engine.api(PORTAL).unwrap();
        api.create_property(
            ty,
            &PropertyCreate {
                name: name.into(),
                label: name.into(),
                property_type: if numeric { "number" } else { "string" }.into(),
                field_type: if numeric { "number" } else { "text" }.into(),
                group_name: "contactinformation".into(),
                description: None,
                has_unique_value: false,
            },
        )
        .await
        .unwrap();
    }
}
