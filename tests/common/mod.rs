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
        let config = EmulatorConfig { portals: vec![portal_cfg], ..EmulatorConfig::default() };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let emulator = Emulator::start(config, listener).await.expect("emulator");

        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("hubsync.db").display());
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
        let hubspot = HubspotClient::new(ClientConfig::with_base_url(emulator.base_url())).expect("client");
        let settings = EngineSettings { app_id: Some(AppId(APP)), ..EngineSettings::default() };
        let engine = Engine {
            store,
            mappings: Arc::new(Mappings::embedded().expect("mappings")),
            hubspot,
            settings: Arc::new(settings),
        };
        setup::connect_portal(&engine, &portal, None).await.expect("connect portal");
        TestBed { emulator, engine, portal: PortalId(PORTAL), server_url: None, _dir: dir }
    }

    /// Starts hubsync's HTTP server (webhook receiver and API) on 127.0.0.1:0 and points the
    /// emulator's webhooks at it.
    pub async fn serve(&mut self) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let webhook = hubsync_server::WebhookConfig::new(secrecy::SecretString::from(WEBHOOK_SECRET));
        let config = hubsync_server::ServerConfig::new(url.clone(), Some(webhook));
        let router = hubsync_server::router(self.engine.clone(), config, None);
        tokio::spawn(async move {
            let _ = hubsync_server::run(listener, router, std::future::pending()).await;
        });
        self.emulator
            .admin()
            .set_webhook(PORTAL, Some(format!("{url}{}", hubsync_server::WEBHOOK_PATH)), None)
            .expect("set webhook");
        self.server_url = Some(url);
    }

    /// Waits until the emulator has delivered every webhook, then applies the inbox.
    pub async fn settle_inbound(&self) {
        assert!(self.emulator.admin().wait_webhooks_idle(Duration::from_secs(20)).await, "webhooks never went idle");
        self.apply_all().await;
    }

    pub async fn counter(&self, name: &str) -> i64 {
        self.store().counters(self.portal).await.expect("counters").get(name).copied().unwrap_or(0)
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.engine.store
    }

    /// Inserts a record as the app would (captured by the triggers).
    pub async fn app_insert(&self, ty: ObjectType, unified: Value) -> hubsync_core::LocalId {
        let fields = FieldMap::from_unified(&unified);
        self.store().insert_record(self.portal, ty, &fields).await.expect("insert").local_id
    }

    /// Drains the outbox completely; returns the total HubSpot calls made.
    pub async fn push_all(&self) -> usize {
        let mut calls = 0;
        for _ in 0..1000 {
            let step = outbound::push_once(&self.engine, self.portal).await.expect("push");
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
            let step = inbound::apply_once(&self.engine, self.portal).await.expect("apply");
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
            .filter(|(op, _)| ["batch_create", "batch_update", "batch_upsert", "batch_archive"].iter().any(|w| op.ends_with(w)))
            .map(|(_, n)| n)
            .sum()
    }

    pub fn remote(&self, kind: ObjectKind, id: u64) -> Option<Value> {
        self.emulator.admin().get(PORTAL, kind, id).expect("emulator get")
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
        assert!(tokio::time::Instant::now() < deadline, "condition not met within {timeout:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
