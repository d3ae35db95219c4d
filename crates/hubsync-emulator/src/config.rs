//! Start-time configuration: portals, behaviour settings (including every HubSpot behaviour the
//! digest marks unverified) and fault knobs. [`Settings`] and [`Faults`] can also be changed at
//! runtime through the admin API.

use serde::{Deserialize, Serialize};

/// Everything the emulator needs to start.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EmulatorConfig {
    /// Portals (HubSpot accounts) served from the start; more can be added at runtime.
    pub portals: Vec<PortalConfig>,
    /// Behaviour settings.
    pub settings: Settings,
    /// Fault injection, all off by default.
    pub faults: Faults,
    /// Seed for every random choice (faults, retry jitter, generated tokens are not seeded).
    pub seed: u64,
    /// Developer API key accepted as `?hapikey=` on the webhooks management API. `None` accepts
    /// any key.
    pub developer_api_key: Option<String>,
}

impl Default for EmulatorConfig {
    fn default() -> Self {
        Self {
            portals: Vec::new(),
            settings: Settings::default(),
            faults: Faults::default(),
            seed: 0x5eed,
            developer_api_key: None,
        }
    }
}

/// One emulated HubSpot account and the app installed in it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PortalConfig {
    /// The account ("hub") id.
    pub portal_id: u64,
    /// The id of the app installed in the portal: webhooks carry it as `appId`, and API writes
    /// through this portal's tokens carry it as `sourceId`.
    pub app_id: u64,
    /// Account tier, which sets the 10-second burst budget.
    #[serde(default)]
    pub tier: Tier,
    /// Daily request budget for private-app tokens; `None` takes the tier's documented value.
    #[serde(default)]
    pub daily_limit: Option<u64>,
    /// A static private-app bearer token (e.g. `pat-na1-...`).
    #[serde(default)]
    pub private_app_token: Option<String>,
    /// The OAuth client, when the app authenticates with OAuth.
    #[serde(default)]
    pub oauth: Option<OAuthClient>,
    /// Where webhook deliveries go; `None` queues nothing.
    #[serde(default)]
    pub webhook_target: Option<String>,
    /// The app's client secret, used to sign webhook deliveries.
    #[serde(default)]
    pub webhook_secret: String,
    /// Which webhook subscriptions the app has at start.
    #[serde(default)]
    pub subscriptions: SubscriptionPreset,
}

impl PortalConfig {
    /// A portal with a private-app token, the Starter tier and default subscriptions.
    pub fn new(portal_id: u64, app_id: u64) -> Self {
        Self {
            portal_id,
            app_id,
            tier: Tier::default(),
            daily_limit: None,
            private_app_token: None,
            oauth: None,
            webhook_target: None,
            webhook_secret: String::new(),
            subscriptions: SubscriptionPreset::default(),
        }
    }
}

/// An OAuth 2 client registered for a portal's app.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OAuthClient {
    /// `client_id`.
    pub client_id: String,
    /// `client_secret`.
    pub client_secret: String,
    /// The redirect URI the token exchange must repeat; `None` accepts any.
    #[serde(default)]
    pub redirect_uri: Option<String>,
    /// Scopes reported in token metadata.
    #[serde(default)]
    pub scopes: Vec<String>,
}

/// Subscriptions an app starts with.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SubscriptionPreset {
    /// Every event type for contacts, companies and deals, and `propertyChange` for every property
    /// (including custom properties created later).
    #[default]
    All,
    /// No subscriptions; add them through `/webhooks/v3/{appId}/subscriptions`.
    None,
}

/// Account tier: the 10-second rolling burst budget and the default daily budget.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Tier {
    /// Free and Starter private apps: 100 per 10 s, 250,000 a day.
    #[default]
    Starter,
    /// Public (marketplace) OAuth apps: 110 per 10 s per installing account, no daily limit.
    PublicApp,
    /// Professional: 190 per 10 s, 625,000 a day.
    Professional,
    /// Enterprise: 190 per 10 s, 1,000,000 a day.
    Enterprise,
    /// With the API limit increase: 250 per 10 s, 2,000,000 a day.
    LimitIncrease,
    /// Any burst and daily budget (for tests that need a small window).
    Custom {
        /// Requests per burst window.
        burst: u32,
        /// Requests per day.
        daily: u64,
    },
}

impl Tier {
    /// Requests allowed per burst window.
    pub fn burst(self) -> u32 {
        match self {
            Tier::Starter => 100,
            Tier::PublicApp => 110,
            Tier::Professional | Tier::Enterprise => 190,
            Tier::LimitIncrease => 250,
            Tier::Custom { burst, .. } => burst,
        }
    }

    /// Default requests allowed per day.
    pub fn daily(self) -> u64 {
        match self {
            Tier::Starter | Tier::PublicApp => 250_000,
            Tier::Professional => 625_000,
            Tier::Enterprise => 1_000_000,
            Tier::LimitIncrease => 2_000_000,
            Tier::Custom { daily, .. } => daily,
        }
    }
}

/// Who shares a burst budget.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BurstScope {
    /// All apps in a portal share one budget (a competing app's spend reduces ours).
    #[default]
    Portal,
    /// Each app has its own budget (HubSpot's documented rule for private apps).
    App,
}

/// What webhook events caused by an app's API writes say about their source.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ApiChangeSource {
    /// `changeSource: "INTEGRATION"`, `sourceId: "<appId>"` (observed in public captures).
    #[default]
    Integration,
    /// `changeSource: "API"` and no `sourceId` (the unverified alternative).
    Api,
}

/// Search filter-count limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SearchLimits {
    /// Maximum `filterGroups`.
    pub max_groups: usize,
    /// Maximum filters in one group.
    pub max_filters_per_group: usize,
    /// Maximum filters across all groups.
    pub max_filters_total: usize,
}

impl Default for SearchLimits {
    fn default() -> Self {
        Self {
            max_groups: 5,
            max_filters_per_group: 6,
            max_filters_total: 18,
        }
    }
}

/// Behaviour settings. Defaults follow the digest; where HubSpot's behaviour is unverified the
/// default is the documented or most likely choice (see the crate README).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// Milliseconds before a write becomes visible to search.
    pub search_lag_ms: u64,
    /// Search filter-count limits.
    pub search_limits: SearchLimits,
    /// Search requests allowed per search window (per portal).
    pub search_per_second: u32,
    /// Length of the search window in ms (1000 on HubSpot).
    pub search_window_ms: u64,
    /// Length of the burst window in ms (10000 on HubSpot).
    pub burst_window_ms: u64,
    /// Who shares a burst budget.
    pub burst_scope: BurstScope,
    /// Send `Retry-After` (seconds) on 429 responses.
    pub retry_after_header: bool,
    /// A merge creates a record with a new id (current HubSpot); `false`: the primary keeps its id.
    pub merge_creates_new_id: bool,
    /// A merge also emits a `deletion` event for the merged-away record(s).
    pub merge_emits_deletion: bool,
    /// A PATCH that sets a property to its current value still emits `propertyChange`.
    pub emit_unchanged_property_change: bool,
    /// What events from an app's API writes say about their source.
    pub api_change_source: ApiChangeSource,
    /// DELETE of an unknown id answers 404 instead of 204.
    pub delete_missing_is_404: bool,
    /// A list `limit` above 100 answers 400 instead of being clamped to 100.
    pub reject_list_limit_over_100: bool,
    /// A refresh-token grant issues a new refresh token (the old one stops working).
    pub rotate_refresh_tokens: bool,
    /// OAuth access-token lifetime in seconds (`expires_in`).
    pub access_token_ttl_secs: u64,
    /// Multiplier applied to webhook retry delays (1.0 spreads 10 retries over about 24 h).
    pub webhook_time_scale: f64,
    /// Milliseconds HubSpot waits for a webhook answer before counting it failed.
    pub webhook_timeout_ms: u64,
    /// Retries after the first attempt.
    pub webhook_max_retries: u32,
    /// Maximum events in one delivery.
    pub webhook_max_batch: usize,
    /// Maximum deliveries in flight per portal.
    pub webhook_max_in_flight: usize,
    /// How long fresh events wait to be batched together, in ms.
    pub webhook_batch_window_ms: u64,
    /// Largest accepted request body in bytes (413 above).
    pub max_body_bytes: usize,
    /// Longest accepted request URI in characters (414 above).
    pub max_uri_chars: usize,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            search_lag_ms: 0,
            search_limits: SearchLimits::default(),
            search_per_second: 5,
            search_window_ms: 1000,
            burst_window_ms: 10_000,
            burst_scope: BurstScope::Portal,
            retry_after_header: false,
            merge_creates_new_id: true,
            merge_emits_deletion: true,
            emit_unchanged_property_change: false,
            api_change_source: ApiChangeSource::Integration,
            delete_missing_is_404: false,
            reject_list_limit_over_100: false,
            rotate_refresh_tokens: false,
            access_token_ttl_secs: 1800,
            webhook_time_scale: 1.0,
            webhook_timeout_ms: 5000,
            webhook_max_retries: 10,
            webhook_max_batch: 100,
            webhook_max_in_flight: 10,
            webhook_batch_window_ms: 20,
            max_body_bytes: 10 * 1024 * 1024,
            max_uri_chars: 16_200,
        }
    }
}

/// Fault injection. Percentages are 0–100; every decision draws from a generator seeded by
/// [`EmulatorConfig::seed`], so the same sequence of calls sees the same faults.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Faults {
    /// Share of webhook events never delivered.
    pub webhook_drop_pct: f64,
    /// Share of webhook events delivered twice.
    pub webhook_duplicate_pct: f64,
    /// Share of webhook events held back so that later events overtake them.
    pub webhook_reorder_pct: f64,
    /// Share of webhook events delayed by `webhook_delay_ms`.
    pub webhook_delay_pct: f64,
    /// Delay applied to delayed events, in ms.
    pub webhook_delay_ms: u64,
    /// Share of API calls answered with a 5xx.
    pub api_5xx_pct: f64,
    /// Share of API calls that are carried out but answered with a 5xx anyway (the client
    /// cannot tell whether its write happened).
    pub api_5xx_after_write_pct: f64,
    /// Share of API calls slowed by `api_latency_ms`.
    pub api_latency_pct: f64,
    /// Added latency in ms.
    pub api_latency_ms: u64,
    /// Share (0–100) of every portal's burst budget spent by a competing app.
    pub competing_app_share_pct: f64,
}
