//! A real server for the tests: SQLite in a temporary folder, an engine over it, the router
//! served by `run` on 127.0.0.1:0, and a signer written here from HubSpot's published formula
//! (independent of the crate's verifier).

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use base64::Engine as _;
use hubsync_core::PortalId;
use hubsync_engine::{Engine, EngineSettings};
use hubsync_hubspot::{ClientConfig, HubspotClient, PortalCredentials};
use hubsync_mapping::Mappings;
use hubsync_server::{ServerConfig, WebhookConfig};
use hubsync_store::{Portal, PortalAuth, PortalStatus, Store};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use secrecy::SecretString;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// The HubSpot app's client secret the server is configured with.
pub const SECRET: &str = "whsec-7d1f0c2a-9b3e-4c55-a1d0-never-log-this";
/// The private-app token stored in the portal's credentials.
pub const TOKEN: &str = "pat-na1-11111111-2222-3333-4444-token-never-shown";
/// The portal hubsync knows.
pub const PORTAL: PortalId = PortalId(4242);
/// Its display name.
pub const PORTAL_NAME: &str = "Acme Production";
/// The URL HubSpot calls (not the socket's address: a proxy sits in front).
pub const PUBLIC_URL: &str = "https://hubsync.example.test/sync";

/// A running server.
pub struct TestServer {
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    /// The engine the server was built with.
    pub engine: Engine,
    /// A client.
    pub http: reqwest::Client,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<std::io::Result<()>>>,
    _dir: tempfile::TempDir,
}

impl TestServer {
    /// The store.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.engine.store
    }

    /// A URL on the server.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Posts a delivery signed (v3) for the public URL, now.
    pub async fn deliver(&self, body: &[u8]) -> reqwest::Response {
        self.deliver_signed(body, SECRET, now_ms()).await
    }

    /// Posts a delivery signed with `secret` at `timestamp`.
    pub async fn deliver_signed(
        &self,
        body: &[u8],
        secret: &str,
        timestamp: i64,
    ) -> reqwest::Response {
        let uri = format!("{PUBLIC_URL}/webhooks/hubspot");
        let signature = sign_v3(secret, "POST", &uri, body, timestamp);
        self.http
            .post(self.url("/webhooks/hubspot"))
            .header("content-type", "application/json")
            .header("x-hubspot-signature-v3", signature)
            .header("x-hubspot-request-timestamp", timestamp.to_string())
            .body(body.to_vec())
            .send()
            .await
            .expect("request")
    }

    /// Gets a path and returns status and body.
    pub async fn get(&self, path: &str) -> (u16, String) {
        let response = self.http.get(self.url(path)).send().await.expect("request");
        let status = response.status().as_u16();
        (status, response.text().await.expect("body"))
    }

    /// Pending inbox events of a portal.
    pub async fn inbox_depth(&self, portal: PortalId) -> u64 {
        self.store()
            .queue_depths(portal)
            .await
            .expect("depths")
            .inbox
    }

    /// Completes the server's shutdown future, without waiting for `run` to return.
    pub fn begin_shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }

    /// Stops the server through its shutdown future and checks that `run` returned cleanly.
    pub async fn stop(mut self) {
        self.begin_shutdown();
        if let Some(task) = self.task.take() {
            let result = tokio::time::timeout(Duration::from_secs(10), task)
                .await
                .expect("run returns after shutdown")
                .expect("server task");
            result.expect("run");
        }
    }
}

/// A server with the default test configuration.
pub async fn start() -> TestServer {
    start_with(|config| config).await
}

/// A server whose configuration `adjust` changes.
pub async fn start_with(adjust: impl FnOnce(ServerConfig) -> ServerConfig) -> TestServer {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    start_on(listener, PUBLIC_URL, "http://127.0.0.1:9", adjust).await
}

/// A server on `listener`, reachable by HubSpot at `public_url`, whose HubSpot client talks to
/// `hubspot_base` (the test portal registered with [`TOKEN`]).
pub async fn start_on(
    listener: tokio::net::TcpListener,
    public_url: &str,
    hubspot_base: &str,
    adjust: impl FnOnce(ServerConfig) -> ServerConfig,
) -> TestServer {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("hubsync.db").display()
    );
    let store = hubsync_store::connect(&url).await.expect("store");
    store
        .upsert_portal(&Portal {
            portal_id: PORTAL,
            name: PORTAL_NAME.to_owned(),
            app_id: None,
            auth: PortalAuth(json!({ "kind": "private_app", "token": TOKEN })),
            status: PortalStatus::Active,
            status_reason: None,
            config: json!({}),
            created_at: 0,
        })
        .await
        .expect("portal");
    let hubspot = HubspotClient::new(ClientConfig::with_base_url(hubspot_base)).expect("client");
    // Registered, so the status page has a live budget.
    hubspot.portal(
        PORTAL,
        PortalCredentials::PrivateApp(SecretString::from(TOKEN)),
    );
    let engine = Engine {
        store,
        mappings: Arc::new(Mappings::embedded().expect("mappings")),
        hubspot,
        settings: Arc::new(EngineSettings::default()),
    };
    let webhook = WebhookConfig::new(SecretString::from(SECRET));
    let config = adjust(ServerConfig::new(public_url, Some(webhook)));
    config.validate().expect("valid config");
    let app = hubsync_server::router(engine.clone(), config, Some(metrics_handle()));
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(hubsync_server::run(listener, app, async move {
        let _ = stopped.await;
    }));
    TestServer {
        base,
        engine,
        http: reqwest::Client::new(),
        stop: Some(stop),
        task: Some(task),
        _dir: dir,
    }
}

/// The process-wide Prometheus recorder (installed once per test binary).
pub fn metrics_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            PrometheusBuilder::new()
                .install_recorder()
                .expect("recorder")
        })
        .clone()
}

/// Now, epoch milliseconds.
pub fn now_ms() -> i64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock");
    i64::try_from(now.as_millis()).expect("ms")
}

/// HMAC-SHA256 (RFC 2104) written out from its definition:
/// `H((K ^ opad) || H((K ^ ipad) || m))` with 64-byte blocks.
pub fn hmac_sha256(key: &[u8], message: &[u8]) -> Vec<u8> {
    const BLOCK: usize = 64;
    let mut k = [0u8; BLOCK];
    if key.len() > BLOCK {
        let digest = Sha256::digest(key);
        k[..digest.len()].copy_from_slice(&digest);
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let ipad: Vec<u8> = k.iter().map(|b| b ^ 0x36).collect();
    let opad: Vec<u8> = k.iter().map(|b| b ^ 0x5c).collect();
    let inner = Sha256::new()
        .chain_update(&ipad)
        .chain_update(message)
        .finalize();
    Sha256::new()
        .chain_update(&opad)
        .chain_update(inner)
        .finalize()
        .to_vec()
}

/// HubSpot's v3 signature: base64 of `HMAC-SHA256(secret, method + uri + body + timestamp)`
/// (the test URIs contain no percent-escapes, so the URI needs no normalising).
pub fn sign_v3(secret: &str, method: &str, uri: &str, body: &[u8], timestamp: i64) -> String {
    let mut message = Vec::new();
    message.extend_from_slice(method.as_bytes());
    message.extend_from_slice(uri.as_bytes());
    message.extend_from_slice(body);
    message.extend_from_slice(timestamp.to_string().as_bytes());
    base64::engine::general_purpose::STANDARD.encode(hmac_sha256(secret.as_bytes(), &message))
}

/// HubSpot's v1 signature: hex `SHA256(secret + body)`.
pub fn sign_v1(secret: &str, body: &[u8]) -> String {
    let digest = Sha256::new()
        .chain_update(secret.as_bytes())
        .chain_update(body)
        .finalize();
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// A `contact.propertyChange` event.
pub fn property_change(
    portal: PortalId,
    event_id: u64,
    object_id: u64,
    property: &str,
    value: &str,
) -> Value {
    json!({
        "eventId": event_id,
        "subscriptionId": 7562680,
        "portalId": portal.get(),
        "appId": 50780459,
        "occurredAt": 1787843156000_i64 + event_id as i64,
        "subscriptionType": "contact.propertyChange",
        "attemptNumber": 0,
        "objectId": object_id,
        "propertyName": property,
        "propertyValue": value,
        "changeSource": "CRM_UI",
        "sourceId": "userId:76023669"
    })
}

/// A delivery body.
pub fn body(events: &[Value]) -> Vec<u8> {
    serde_json::to_vec(events).expect("json")
}
