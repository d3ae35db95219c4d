//! Shared emulator state: portals, tokens, runtime settings and faults, seeded generators and
//! counters.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use parking_lot::{Mutex, RwLock};
use rand::SeedableRng;
use rand::rngs::StdRng;

use crate::config::{Faults, PortalConfig, Settings};
use crate::limits::Limiter;
use crate::model::now_ms;
use crate::portal::PortalData;
use crate::stats::Stats;
use crate::webhooks::{Subscriptions, WebhookQueue};

/// How a bearer token was issued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    /// A private-app token: daily limit and daily headers apply.
    Private,
    /// An OAuth access token: expires; no daily limit or headers.
    OAuth,
}

/// What a bearer token grants.
#[derive(Debug, Clone)]
pub struct TokenInfo {
    /// Portal.
    pub portal: u64,
    /// App.
    pub app: u64,
    /// Kind.
    pub kind: TokenKind,
    /// Expiry (ms), OAuth only.
    pub expires_at: Option<i64>,
}

/// A refresh token.
#[derive(Debug, Clone)]
pub struct RefreshInfo {
    /// Portal.
    pub portal: u64,
    /// Client.
    pub client_id: String,
}

/// A pending authorization code.
#[derive(Debug, Clone)]
pub struct CodeInfo {
    /// Portal.
    pub portal: u64,
    /// Client.
    pub client_id: String,
    /// Redirect URI it was issued for.
    pub redirect_uri: Option<String>,
    /// Issued at (ms).
    pub issued_at: i64,
}

/// Tokens of every portal.
#[derive(Debug, Default)]
pub struct Tokens {
    /// Access and private tokens.
    pub access: HashMap<String, TokenInfo>,
    /// Refresh tokens.
    pub refresh: HashMap<String, RefreshInfo>,
    /// Authorization codes.
    pub codes: HashMap<String, CodeInfo>,
}

/// One portal.
#[derive(Debug)]
pub struct Portal {
    /// Portal id.
    pub id: u64,
    /// Configuration (target and secret change at runtime).
    pub cfg: RwLock<PortalConfig>,
    /// Data.
    pub data: RwLock<PortalData>,
    /// Rate limits.
    pub limiter: Mutex<Limiter>,
    /// Webhook subscriptions.
    pub subs: RwLock<Subscriptions>,
    /// Webhook queue.
    pub webhooks: Arc<WebhookQueue>,
    /// Generator for API faults.
    pub api_rng: Mutex<StdRng>,
    /// Removed from the emulator (dispatcher stops).
    pub removed: AtomicBool,
}

impl Portal {
    /// A portal from its configuration.
    pub fn new(cfg: PortalConfig, seed: u64) -> Self {
        let now = now_ms();
        let data = PortalData::new(cfg.portal_id, now);
        let subs = Subscriptions::preset(cfg.subscriptions, &data, now);
        let mix = seed ^ cfg.portal_id.wrapping_mul(0x9e37_79b9_7f4a_7c15);
        Self {
            id: cfg.portal_id,
            data: RwLock::new(data),
            limiter: Mutex::new(Limiter::default()),
            subs: RwLock::new(subs),
            webhooks: Arc::new(WebhookQueue::new(StdRng::seed_from_u64(mix ^ 0x77))),
            api_rng: Mutex::new(StdRng::seed_from_u64(mix ^ 0x41)),
            removed: AtomicBool::new(false),
            cfg: RwLock::new(cfg),
        }
    }

    /// The app id.
    pub fn app_id(&self) -> u64 {
        self.cfg.read().app_id
    }
}

/// Everything the HTTP handlers and the admin API share.
#[derive(Debug)]
pub struct Shared {
    /// Portals by id.
    pub portals: RwLock<HashMap<u64, Arc<Portal>>>,
    /// Tokens.
    pub tokens: RwLock<Tokens>,
    /// Behaviour settings.
    pub settings: RwLock<Settings>,
    /// Faults.
    pub faults: RwLock<Faults>,
    /// Counters.
    pub stats: Stats,
    /// The seed.
    pub seed: u64,
    /// Developer API key for the webhooks management API.
    pub developer_api_key: Option<String>,
    /// HTTP client for webhook deliveries.
    pub http: reqwest::Client,
    /// Set on shutdown.
    pub shutdown: tokio::sync::watch::Sender<bool>,
}

impl Shared {
    /// A portal by id.
    pub fn portal(&self, id: u64) -> Option<Arc<Portal>> {
        self.portals.read().get(&id).cloned()
    }
}
