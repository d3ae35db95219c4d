//! Client configuration. Every default is HubSpot's documented behaviour for a public app;
//! tests shrink the windows to keep runs short.

use std::time::Duration;

use time::UtcOffset;

/// HubSpot's API base URL.
pub const HUBSPOT_API_BASE: &str = "https://api.hubapi.com";

/// Configuration shared by every portal of one [`crate::HubspotClient`].
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// API base URL: `https://api.hubapi.com` or an emulator's `http://127.0.0.1:PORT`.
    pub base_url: String,
    /// Total time allowed for one HTTP attempt.
    pub request_timeout: Duration,
    /// Time allowed to open a connection.
    pub connect_timeout: Duration,
    /// `User-Agent` sent with every request.
    pub user_agent: String,
    /// Default per-portal limits (overridable per portal).
    pub limits: LimitsConfig,
    /// Retry policy.
    pub retry: RetryConfig,
    /// Circuit breaker policy.
    pub breaker: BreakerConfig,
    /// Refresh OAuth access tokens this long before they expire (capped at half the
    /// token's lifetime).
    pub refresh_margin: Duration,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            base_url: HUBSPOT_API_BASE.to_owned(),
            request_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(5),
            user_agent: concat!("hubsync/", env!("CARGO_PKG_VERSION")).to_owned(),
            limits: LimitsConfig::default(),
            retry: RetryConfig::default(),
            breaker: BreakerConfig::default(),
            refresh_margin: Duration::from_secs(5 * 60),
        }
    }
}

impl ClientConfig {
    /// The defaults, pointed at another base URL (an emulator).
    pub fn with_base_url(base_url: impl Into<String>) -> Self {
        ClientConfig {
            base_url: base_url.into(),
            ..ClientConfig::default()
        }
    }
}

/// Per-portal budgets. The server's headers correct `general_max` and `general_window` at
/// run time; these are the starting point.
#[derive(Debug, Clone)]
pub struct LimitsConfig {
    /// Burst requests per `general_window` (public app: 110; private apps 100/190/250 by tier).
    pub general_max: u32,
    /// The burst window (10 s, rolling).
    pub general_window: Duration,
    /// Search requests per `search_window` (5).
    pub search_max: u32,
    /// The search window (1 s).
    pub search_window: Duration,
    /// Daily allowance if known in advance (private apps); `None` until headers say so.
    pub daily_limit: Option<u64>,
    /// The daily reset happens at midnight in this offset (the account's time zone).
    pub daily_reset_offset: UtcOffset,
    /// Slots of the general window that only interactive calls may take.
    pub interactive_reserve: u32,
    /// Further slots that reconcile scans leave to outbound writes.
    pub outbound_reserve: u32,
    /// Slack kept free while another app is seen spending the same budget.
    pub contention_margin: u32,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            general_max: 110,
            general_window: Duration::from_secs(10),
            search_max: 5,
            search_window: Duration::from_secs(1),
            daily_limit: None,
            daily_reset_offset: UtcOffset::UTC,
            interactive_reserve: 1,
            outbound_reserve: 2,
            contention_margin: 2,
        }
    }
}

/// How transient failures and rate limits are retried.
#[derive(Debug, Clone)]
pub struct RetryConfig {
    /// Attempts per call for 5xx, 423, 477, timeouts and connection errors (first try included).
    pub max_attempts: u32,
    /// Backoff base (doubles per attempt, full jitter in the upper half).
    pub backoff_base: Duration,
    /// Backoff cap.
    pub backoff_cap: Duration,
    /// How many 429s (burst or secondly) one call waits out before giving up.
    pub max_rate_limit_retries: u32,
    /// Upper bound of the random jitter added to rate-limit waits.
    pub rate_limit_jitter: Duration,
    /// Minimum wait after a 423 Locked (HubSpot: the lock lasts 2 s).
    pub locked_wait: Duration,
    /// Longest `Retry-After` honoured inside a call; longer ones are returned to the caller.
    pub max_retry_after: Duration,
}

impl Default for RetryConfig {
    fn default() -> Self {
        RetryConfig {
            max_attempts: 4,
            backoff_base: Duration::from_millis(200),
            backoff_cap: Duration::from_secs(10),
            max_rate_limit_retries: 5,
            rate_limit_jitter: Duration::from_millis(250),
            locked_wait: Duration::from_secs(2),
            max_retry_after: Duration::from_secs(60),
        }
    }
}

/// When a portal's circuit opens.
#[derive(Debug, Clone)]
pub struct BreakerConfig {
    /// Consecutive transient failures (5xx, timeouts, connection errors) that open it.
    pub failure_threshold: u32,
    /// How long it stays open before one probe is let through.
    pub cool_down: Duration,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        BreakerConfig {
            failure_threshold: 8,
            cool_down: Duration::from_secs(30),
        }
    }
}
