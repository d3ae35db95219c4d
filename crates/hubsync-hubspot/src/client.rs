//! [`HubspotClient`]: one shared HTTP client, the registry of portals, and the OAuth grants
//! that happen before a portal exists.

use std::collections::HashMap;
use std::sync::Arc;

use hubsync_core::PortalId;
use parking_lot::{Mutex, RwLock};
use secrecy::{ExposeSecret, SecretString};
use time::OffsetDateTime;

use crate::auth::{
    OAuthApp, PortalAuth, PortalCredentials, TOKEN_PATH, TokenGrant, TokenStore, request_token,
};
use crate::breaker::{CircuitBreaker, CircuitState};
use crate::config::{ClientConfig, LimitsConfig};
use crate::error::ApiError;
use crate::lanes::{Lane, LaneKind};
use crate::limiter::{DailyBudget, RollingWindow};
use crate::portal::{CallOptions, PortalClient};
use crate::stats::{PortalStats, StatsSnapshot};
use crate::{AuthStatus, BudgetView};

/// What every portal handle shares: the HTTP client, the base URL, the configuration.
pub(crate) struct Shared {
    pub http: reqwest::Client,
    pub base: reqwest::Url,
    pub config: ClientConfig,
    pub token_store: Option<Arc<dyn TokenStore>>,
}

impl Shared {
    /// `base` + a fixed API path (`crm/v3/objects`) + variable segments, each
    /// percent-encoded as exactly one path segment (ids, emails, property names).
    pub fn url(&self, fixed: &str, segments: &[&str]) -> Result<reqwest::Url, ApiError> {
        let mut url = self.base.clone();
        {
            let mut path = url.path_segments_mut().map_err(|()| {
                ApiError::InvalidRequest(format!("base url `{}` cannot take a path", self.base))
            })?;
            path.pop_if_empty();
            path.extend(fixed.split('/').filter(|s| !s.is_empty()));
            path.extend(segments);
        }
        Ok(url)
    }
}

/// Everything the client keeps per portal.
pub(crate) struct PortalState {
    pub portal: PortalId,
    pub auth: PortalAuth,
    pub general: Lane,
    pub search: Lane,
    pub daily: Mutex<DailyBudget>,
    pub breaker: Mutex<CircuitBreaker>,
    pub stats: PortalStats,
}

impl PortalState {
    fn new(
        portal: PortalId,
        credentials: PortalCredentials,
        limits: &LimitsConfig,
        config: &ClientConfig,
    ) -> Self {
        let interactive = 0;
        let outbound = limits.interactive_reserve;
        let reconcile = limits.interactive_reserve + limits.outbound_reserve;
        PortalState {
            portal,
            auth: PortalAuth::new(portal, credentials, config.refresh_margin),
            general: Lane::new(
                RollingWindow::new(
                    limits.general_max,
                    limits.general_window,
                    limits.contention_margin,
                ),
                [interactive, outbound, reconcile],
            ),
            // Five a second leaves no room for reserves: priority order alone decides.
            search: Lane::new(
                RollingWindow::new(limits.search_max, limits.search_window, 0),
                [0, 0, 0],
            ),
            daily: Mutex::new(DailyBudget::new(
                limits.daily_limit,
                limits.daily_reset_offset,
                OffsetDateTime::now_utc(),
            )),
            breaker: Mutex::new(CircuitBreaker::new(
                config.breaker.failure_threshold,
                config.breaker.cool_down,
            )),
            stats: PortalStats::default(),
        }
    }

    pub fn lane(&self, kind: LaneKind) -> &Lane {
        match kind {
            LaneKind::General => &self.general,
            LaneKind::Search => &self.search,
        }
    }

    pub fn budget(&self) -> BudgetView {
        let (general, in_flight_general) = self.general.view();
        let (search, in_flight_search) = self.search.view();
        let now = OffsetDateTime::now_utc();
        let daily = self.daily.lock();
        BudgetView {
            limit: general.limit,
            remaining: general.remaining,
            window_ms: u64::try_from(general.window.as_millis()).unwrap_or(u64::MAX),
            reset_in_ms: u64::try_from(general.reset_in.as_millis()).unwrap_or(u64::MAX),
            daily_remaining: daily.remaining(),
            in_flight: in_flight_general + in_flight_search,
            parked_until: daily.parked_until(now),
            search_limit: search.limit,
            search_remaining: search.remaining,
        }
    }

    pub fn status(&self) -> PortalStatus {
        let mut stats = self.stats.snapshot();
        stats.token_refreshes = self.auth.refreshes();
        PortalStatus {
            portal: self.portal,
            auth: self.auth.status(),
            circuit: self.breaker.lock().state(tokio::time::Instant::now()),
            budget: self.budget(),
            stats,
        }
    }
}

/// Everything a status page shows about one portal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortalStatus {
    /// The portal.
    pub portal: PortalId,
    /// Whether its credentials work.
    pub auth: AuthStatus,
    /// Its circuit breaker.
    pub circuit: CircuitState,
    /// Its budgets.
    pub budget: BudgetView,
    /// Its counters.
    pub stats: StatsSnapshot,
}

/// The HubSpot client: cheap to clone, one connection pool, a registry of portals.
#[derive(Clone)]
pub struct HubspotClient {
    shared: Arc<Shared>,
    portals: Arc<RwLock<HashMap<PortalId, Arc<PortalState>>>>,
}

impl std::fmt::Debug for HubspotClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HubspotClient")
            .field("base_url", &self.shared.base.as_str())
            .field("portals", &self.portals.read().len())
            .finish()
    }
}

impl HubspotClient {
    /// A client with no token store (refreshed tokens live in memory only).
    pub fn new(config: ClientConfig) -> Result<Self, ApiError> {
        Self::build(config, None)
    }

    /// A client that hands every refreshed OAuth token to `store`.
    pub fn with_token_store(
        config: ClientConfig,
        store: Arc<dyn TokenStore>,
    ) -> Result<Self, ApiError> {
        Self::build(config, Some(store))
    }

    fn build(
        config: ClientConfig,
        token_store: Option<Arc<dyn TokenStore>>,
    ) -> Result<Self, ApiError> {
        let mut base_text = config.base_url.trim_end_matches('/').to_owned();
        base_text.push('/');
        let base = reqwest::Url::parse(&base_text).map_err(|e| {
            ApiError::InvalidRequest(format!("invalid base url `{}`: {e}", config.base_url))
        })?;
        let http = reqwest::Client::builder()
            .timeout(config.request_timeout)
            .connect_timeout(config.connect_timeout)
            .user_agent(config.user_agent.clone())
            .build()
            .map_err(|source| ApiError::Transport {
                attempts: 0,
                source,
            })?;
        Ok(HubspotClient {
            shared: Arc::new(Shared {
                http,
                base,
                config,
                token_store,
            }),
            portals: Arc::new(RwLock::new(HashMap::new())),
        })
    }

    /// Registers a portal (or replaces its credentials, keeping its budgets and clearing
    /// `NeedsReauth`) with the default limits, and returns its handle.
    pub fn portal(&self, portal: PortalId, credentials: PortalCredentials) -> PortalClient {
        let limits = self.shared.config.limits.clone();
        self.portal_with_limits(portal, credentials, &limits)
    }

    /// Like [`HubspotClient::portal`] with this portal's own limits (its tier). The limits only
    /// apply when the portal is first registered.
    pub fn portal_with_limits(
        &self,
        portal: PortalId,
        credentials: PortalCredentials,
        limits: &LimitsConfig,
    ) -> PortalClient {
        let state = {
            let mut portals = self.portals.write();
            match portals.get(&portal) {
                Some(existing) => {
                    existing.auth.replace(credentials);
                    existing.clone()
                }
                None => {
                    let state = Arc::new(PortalState::new(
                        portal,
                        credentials,
                        limits,
                        &self.shared.config,
                    ));
                    portals.insert(portal, state.clone());
                    state
                }
            }
        };
        PortalClient::new(self.shared.clone(), state, CallOptions::default())
    }

    /// The handle of a registered portal.
    pub fn get(&self, portal: PortalId) -> Option<PortalClient> {
        let state = self.portals.read().get(&portal).cloned()?;
        Some(PortalClient::new(
            self.shared.clone(),
            state,
            CallOptions::default(),
        ))
    }

    /// Forgets a portal (its budgets and counters go with it).
    pub fn remove(&self, portal: PortalId) {
        self.portals.write().remove(&portal);
    }

    /// Every registered portal.
    pub fn portals(&self) -> Vec<PortalId> {
        let mut ids: Vec<PortalId> = self.portals.read().keys().copied().collect();
        ids.sort_unstable();
        ids
    }

    /// A registered portal's budget (for the status page and ratelimit headers).
    pub fn budget(&self, portal: PortalId) -> Option<BudgetView> {
        self.portals.read().get(&portal).map(|p| p.budget())
    }

    /// A registered portal's full status.
    pub fn status(&self, portal: PortalId) -> Option<PortalStatus> {
        self.portals.read().get(&portal).map(|p| p.status())
    }

    /// Exchanges an authorization code (from the OAuth redirect) for tokens.
    pub async fn exchange_code(
        &self,
        app: &OAuthApp,
        code: &SecretString,
        redirect_uri: &str,
    ) -> Result<TokenGrant, ApiError> {
        let form = [
            ("grant_type", "authorization_code"),
            ("code", code.expose_secret()),
            ("redirect_uri", redirect_uri),
            ("client_id", app.client_id.as_str()),
            ("client_secret", app.client_secret.expose_secret()),
        ];
        request_token(
            &self.shared.http,
            self.shared.url(TOKEN_PATH, &[])?,
            &form,
            None,
        )
        .await
    }

    /// Exchanges a refresh token for a new access token (outside any registered portal).
    pub async fn refresh_tokens(
        &self,
        app: &OAuthApp,
        refresh_token: &SecretString,
    ) -> Result<TokenGrant, ApiError> {
        let form = [
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token.expose_secret()),
            ("client_id", app.client_id.as_str()),
            ("client_secret", app.client_secret.expose_secret()),
        ];
        request_token(
            &self.shared.http,
            self.shared.url(TOKEN_PATH, &[])?,
            &form,
            Some(refresh_token),
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_keep_the_base_path_and_encode_id_segments() {
        let client =
            HubspotClient::new(ClientConfig::with_base_url("http://127.0.0.1:9/prefix")).unwrap();
        let url = client
            .shared
            .url("crm/v3/objects", &["contacts", "a@b.c"])
            .unwrap();
        assert_eq!(
            url.as_str(),
            "http://127.0.0.1:9/prefix/crm/v3/objects/contacts/a@b.c"
        );
        let url = client
            .shared
            .url("crm/v3/objects", &["contacts", "x/y z"])
            .unwrap();
        assert_eq!(
            url.as_str(),
            "http://127.0.0.1:9/prefix/crm/v3/objects/contacts/x%2Fy%20z"
        );
    }

    #[test]
    fn registering_twice_keeps_one_portal() {
        let client = HubspotClient::new(ClientConfig::default()).unwrap();
        let creds = PortalCredentials::PrivateApp(SecretString::from("t"));
        client.portal(PortalId(1), creds.clone());
        client.portal(PortalId(1), creds);
        assert_eq!(client.portals(), vec![PortalId(1)]);
        assert_eq!(client.budget(PortalId(1)).map(|b| b.limit), Some(110));
        assert!(client.budget(PortalId(2)).is_none());
    }
}
