//! The parts every end-to-end scenario runs on, wired as `hubsync demo` wires them: the HubSpot
//! emulator on 127.0.0.1:0 (one portal at the public-app tier), a SQLite store in a temporary
//! folder, the engine, and on request hubsync's HTTP server with the emulator's webhooks
//! pointed at it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use hubsync_core::{AppId, ObjectType, PortalId};
use hubsync_emulator::{
    Admin, Emulator, EmulatorConfig, EmulatorHandle, Faults, PortalConfig, Settings, Tier,
};
use hubsync_engine::{Engine, EngineSettings, setup};
use hubsync_hubspot::{ClientConfig, HubspotClient};
use hubsync_mapping::Mappings;
use hubsync_store::{Portal, PortalAuth, PortalStatus, SqliteStore, Store};
use serde_json::json;
use tokio::sync::watch;

/// The benchmark portal.
pub const PORTAL: u64 = 62515;
/// Its installed app.
pub const APP: u64 = 54321;
/// Its private-app token.
pub const TOKEN: &str = "pat-na1-hubsync-bench";
/// The webhook signing secret.
pub const WEBHOOK_SECRET: &str = "bench-webhook-secret";
/// The public-app burst budget: 110 requests per 10-second rolling window.
pub const TIER_BURST: u32 = 110;
/// The burst window.
pub const WINDOW: Duration = Duration::from_secs(10);
/// Records per batch call / list page.
pub const PAGE: u64 = 100;

/// How a bed is set up.
#[derive(Debug, Clone, Default)]
pub struct BedOptions {
    /// Faults (a competing app's share) from the start.
    pub faults: Faults,
    /// Engine settings (the app id is filled in).
    pub settings: Option<EngineSettings>,
}

/// A running bed.
pub struct Bed {
    /// The emulator.
    pub emulator: EmulatorHandle,
    /// The engine over the store and a client pointed at the emulator.
    pub engine: Engine,
    /// The same store, for SQL the app runs itself.
    pub sqlite: Arc<SqliteStore>,
    /// The portal.
    pub portal: PortalId,
    /// When the portal was connected (its set-up calls count in the window from here).
    pub connected_at: Instant,
    /// The server's stop signal, once started.
    stop: Option<watch::Sender<bool>>,
    _dir: tempfile::TempDir,
}

impl Bed {
    /// Starts the emulator and the store, and connects the portal (hubsync's property set-up).
    pub async fn start(options: BedOptions) -> anyhow::Result<Bed> {
        let mut portal_cfg = PortalConfig::new(PORTAL, APP);
        portal_cfg.private_app_token = Some(TOKEN.to_owned());
        portal_cfg.webhook_secret = WEBHOOK_SECRET.to_owned();
        portal_cfg.tier = Tier::PublicApp;
        let config = EmulatorConfig {
            portals: vec![portal_cfg],
            settings: Settings::default(),
            faults: options.faults,
            ..EmulatorConfig::default()
        };
        let emulator =
            Emulator::start(config, tokio::net::TcpListener::bind("127.0.0.1:0").await?).await?;

        let dir = tempfile::tempdir()?;
        let url = format!(
            "sqlite://{}?mode=rwc",
            dir.path().join("hubsync.db").display()
        );
        let sqlite = Arc::new(SqliteStore::open(&url).await?);
        let store: Arc<dyn Store> = sqlite.clone();
        let portal = Portal {
            portal_id: PortalId(PORTAL),
            name: "bench".into(),
            app_id: Some(AppId(APP)),
            auth: PortalAuth(json!({"kind": "private_app", "token": TOKEN})),
            status: PortalStatus::Active,
            status_reason: None,
            config: json!({"burst_tier": TIER_BURST}),
            created_at: 0,
        };
        store.upsert_portal(&portal).await?;
        let hubspot = HubspotClient::new(ClientConfig::with_base_url(emulator.base_url()))?;
        let settings = EngineSettings {
            app_id: Some(AppId(APP)),
            ..options.settings.unwrap_or_default()
        };
        let engine = Engine {
            store,
            mappings: Arc::new(Mappings::embedded()?),
            hubspot,
            settings: Arc::new(settings),
        };
        setup::connect_portal(&engine, &portal, None)
            .await
            .context("connecting the bench portal")?;
        Ok(Bed {
            emulator,
            engine,
            sqlite,
            portal: PortalId(PORTAL),
            connected_at: Instant::now(),
            stop: None,
            _dir: dir,
        })
    }

    /// The emulator's admin API.
    pub fn admin(&self) -> Admin {
        self.emulator.admin()
    }

    /// Starts hubsync's server (webhook receiver and API) on 127.0.0.1:0 and points the
    /// emulator's webhooks at it. Returns the server's base URL.
    pub async fn serve(&mut self) -> anyhow::Result<String> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", listener.local_addr()?);
        let webhook =
            hubsync_server::WebhookConfig::new(secrecy::SecretString::from(WEBHOOK_SECRET));
        let router = hubsync_server::router(
            self.engine.clone(),
            hubsync_server::ServerConfig::new(url.clone(), Some(webhook)),
            None,
        );
        let (stop_tx, mut stop_rx) = watch::channel(false);
        tokio::spawn(hubsync_server::run(listener, router, async move {
            let _ = stop_rx.wait_for(|s| *s).await;
        }));
        self.stop = Some(stop_tx);
        self.admin().set_webhook(
            PORTAL,
            Some(format!("{url}{}", hubsync_server::WEBHOOK_PATH)),
            None,
        )?;
        Ok(url)
    }

    /// Waits until the portal's set-up calls have left the burst window (on both the
    /// emulator's and the client's count), so a measurement starts with a fresh budget.
    pub async fn wait_fresh_window(&self) {
        let free_at = self.connected_at + WINDOW + Duration::from_millis(300);
        tokio::time::sleep_until(free_at.into()).await;
    }

    /// Inserts `n` contacts as the app would: plain SQL in transactions of `per_tx` rows,
    /// captured by the triggers. Rows are numbered from `first`.
    pub async fn app_insert_contacts(&self, first: u64, n: u64, per_tx: u64) -> anyhow::Result<()> {
        let pool = self.sqlite.pool();
        let mut i = first;
        while i < first + n {
            let end = (i + per_tx).min(first + n);
            let mut tx = pool.begin().await?;
            for k in i..end {
                sqlx::query(
                    "INSERT INTO contacts (portal_id, first_name, last_name, email_addresses, title, lifecycle_stage) \
                     VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .bind(PORTAL as i64)
                .bind(format!("First{k}"))
                .bind(format!("Last{}", k % 997))
                .bind(json!([format!("person{k}@bench-app.example")]).to_string())
                .bind("Engineer")
                .bind("lead")
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
            i = end;
        }
        Ok(())
    }

    /// Write calls (batch create/update/upsert/archive) the emulator counted for the portal.
    pub fn write_calls(&self) -> u64 {
        let stats = self.admin().stats().portal(PORTAL);
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

    /// Live records of a type in HubSpot.
    pub fn remote_count(&self, ty: ObjectType) -> anyhow::Result<usize> {
        let kind = match ty {
            ObjectType::Contacts => hubsync_emulator::ObjectKind::Contact,
            ObjectType::Companies => hubsync_emulator::ObjectKind::Company,
            ObjectType::Deals => hubsync_emulator::ObjectKind::Deal,
        };
        Ok(self.admin().count(PORTAL, kind)?)
    }

    /// Stops the server (if started), the emulator and the store.
    pub async fn shutdown(self) {
        if let Some(stop) = &self.stop {
            let _ = stop.send(true);
        }
        self.emulator.shutdown().await;
        self.engine.store.close().await;
    }
}

/// The least time `calls` requests need from a fresh budget of `per_window` requests per
/// rolling `window`: the first `per_window` go at once, each later group one window after
/// the group before it.
pub fn least_time(calls: u64, per_window: u64, window: Duration) -> Duration {
    if calls == 0 || per_window == 0 {
        return Duration::ZERO;
    }
    window * u32::try_from((calls - 1) / per_window).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_windows_budget_goes_at_once() {
        let w = Duration::from_secs(10);
        assert_eq!(least_time(100, 110, w), Duration::ZERO);
        assert_eq!(least_time(110, 110, w), Duration::ZERO);
        assert_eq!(least_time(111, 110, w), w);
        assert_eq!(least_time(1000, 110, w), w * 9);
        assert_eq!(least_time(100, 55, w), w);
    }
}
