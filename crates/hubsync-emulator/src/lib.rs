//! A faithful local HubSpot CRM API emulator with webhooks, rate limits and fault injection.
//!
//! It serves, for several portals at once, the CRM v3 objects API (contacts, companies, deals;
//! batch; search), the properties API, associations v4, OAuth and private-app tokens, HubSpot's
//! rate limits and headers, and signed app webhooks, following the project's HubSpot API digest
//! to the byte. An admin API (in process through [`Admin`], over HTTP under `/_emulator/`) acts
//! as a person in the HubSpot UI, seeds data, dumps state, injects faults and exposes counters.
//!
//! ```no_run
//! # async fn demo() -> Result<(), hubsync_emulator::EmulatorError> {
//! use hubsync_emulator::{Emulator, EmulatorConfig, PortalConfig};
//! let mut portal = PortalConfig::new(62515, 54321);
//! portal.private_app_token = Some("pat-na1-test".into());
//! let config = EmulatorConfig { portals: vec![portal], ..EmulatorConfig::default() };
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! let emu = Emulator::start(config, listener).await?;
//! println!("HubSpot at {}", emu.base_url());
//! emu.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! This crate depends on no other hubsync crate, so that it tests them rather than mirrors them.

mod admin;
mod api;
mod config;
mod crm;
mod error;
mod limits;
mod model;
mod oauth;
mod portal;
mod search;
mod seed;
mod state;
mod stats;
mod store;
mod webhooks;
mod webhooks_api;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};

pub use admin::{Admin, DEFAULT_USER_ID};
pub use config::{
    ApiChangeSource, BurstScope, EmulatorConfig, Faults, OAuthClient, PortalConfig, SearchLimits,
    Settings, SubscriptionPreset, Tier,
};
pub use error::EmulatorError;
pub use model::ObjectKind;
pub use seed::{SeedReport, SeedSpec};
pub use stats::{PortalStats, StatsSnapshot};
pub use webhooks::{sign_v1, sign_v3};

use state::{Shared, Tokens};

/// The emulator entry point.
#[derive(Debug)]
pub struct Emulator;

/// A running emulator.
#[derive(Debug)]
pub struct EmulatorHandle {
    addr: SocketAddr,
    shared: Arc<Shared>,
    server: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Emulator {
    /// Starts serving on `listener` with `config`.
    pub async fn start(
        config: EmulatorConfig,
        listener: tokio::net::TcpListener,
    ) -> Result<EmulatorHandle, EmulatorError> {
        let addr = listener.local_addr()?;
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(16)
            .build()
            .map_err(|e| EmulatorError::InvalidConfig(format!("http client: {e}")))?;
        let (tx, mut rx) = tokio::sync::watch::channel(false);
        let shared = Arc::new(Shared {
            portals: RwLock::new(HashMap::new()),
            tokens: RwLock::new(Tokens::default()),
            settings: RwLock::new(config.settings),
            faults: RwLock::new(config.faults),
            stats: stats::Stats::default(),
            seed: config.seed,
            developer_api_key: config.developer_api_key,
            http,
            shutdown: tx,
        });
        for p in config.portals {
            admin::install_portal(&shared, p)?;
        }
        let app = api::router(Arc::clone(&shared));
        let server = tokio::spawn(async move {
            let shutdown = async move {
                while !*rx.borrow() {
                    if rx.changed().await.is_err() {
                        break;
                    }
                }
            };
            if let Err(e) = axum::serve(listener, app)
                .with_graceful_shutdown(shutdown)
                .await
            {
                tracing::error!(error = %e, "emulator server stopped");
            }
        });
        tracing::info!(%addr, "hubspot emulator listening");
        Ok(EmulatorHandle {
            addr,
            shared,
            server: Mutex::new(Some(server)),
        })
    }
}

impl EmulatorHandle {
    /// `http://127.0.0.1:PORT` — use it where the client would use `https://api.hubapi.com`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The in-process admin API.
    pub fn admin(&self) -> Admin {
        Admin {
            shared: Arc::clone(&self.shared),
        }
    }

    /// Stops serving and delivering webhooks.
    pub async fn shutdown(self) {
        let _ = self.shared.shutdown.send(true);
        let server = self.server.lock().take();
        if let Some(s) = server {
            let _ = s.await;
        }
    }
}
