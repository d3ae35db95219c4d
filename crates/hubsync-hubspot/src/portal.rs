//! [`PortalClient`]: one portal's handle, and the request loop every endpoint goes through:
//! fail fast (re-auth, circuit, daily park) → token → lane slot → send → read the rate-limit
//! headers → retry by policy or return a typed error.

use std::sync::Arc;
use std::time::Duration;

use hubsync_core::PortalId;
use hubsync_core::retry::backoff;
use reqwest::{Method, StatusCode};
use secrecy::ExposeSecret;
use time::OffsetDateTime;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::AuthStatus;
use crate::client::{PortalState, PortalStatus, Shared};
use crate::error::{ApiError, HubspotError, RateLimitPolicy};
use crate::lanes::LaneKind;
use crate::limiter::{Priority, RateLimitHeaders};
use crate::stats::StatsSnapshot;

/// A portal's budget as this client sees it, for the status page and the unified API's
/// `RateLimit-*` headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct BudgetView {
    /// Requests allowed per general window (the tier, as the server last reported it).
    pub limit: u32,
    /// Requests this client may still send in the window (other apps' usage subtracted).
    pub remaining: u32,
    /// The general window length, ms.
    pub window_ms: u64,
    /// Time until a slot frees (or the block after a 429 ends), ms.
    pub reset_in_ms: u64,
    /// Daily requests left, when known (private apps).
    pub daily_remaining: Option<u64>,
    /// Requests in flight on both lanes.
    pub in_flight: u32,
    /// Non-interactive calls are parked until then after a DAILY 429.
    #[serde(with = "time::serde::rfc3339::option")]
    pub parked_until: Option<OffsetDateTime>,
    /// Search requests allowed per search window.
    pub search_limit: u32,
    /// Search requests left in the search window.
    pub search_remaining: u32,
}

/// How one call behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallOptions {
    /// Its priority inside the portal's budget.
    pub priority: Priority,
    /// Return 429s at once as [`ApiError::RateLimited`] (with the budget) instead of waiting
    /// for the window to free; for read-throughs that pass 429s on to their own caller.
    pub pass_through_rate_limits: bool,
    /// Give up (with [`ApiError::RateLimited`] and policy `Local`) rather than wait longer
    /// than this for a slot.
    pub max_queue_wait: Option<Duration>,
}

impl Default for CallOptions {
    fn default() -> Self {
        CallOptions {
            priority: Priority::Outbound,
            pass_through_rate_limits: false,
            max_queue_wait: None,
        }
    }
}

/// Asked right before each send (after the wait for a budget slot): `false` withholds the
/// request ([`ApiError::Withheld`]).
pub type SendGuard = Arc<dyn Fn() -> bool + Send + Sync>;

/// One portal's handle: cheap to clone; clones share budgets, auth and circuit.
#[derive(Clone)]
pub struct PortalClient {
    pub(crate) shared: Arc<Shared>,
    pub(crate) state: Arc<PortalState>,
    pub(crate) options: CallOptions,
    pub(crate) guard: Option<SendGuard>,
}

impl std::fmt::Debug for PortalClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PortalClient")
            .field("portal", &self.state.portal)
            .field("options", &self.options)
            .field("guarded", &self.guard.is_some())
            .finish()
    }
}

/// How many times one request answered 401 is re-sent with newer credentials (a token another
/// request refreshed, or one this request refreshed) before it gives up.
const AUTH_RETRIES: u32 = 3;

/// A request, before it is sent (kept so it can be re-sent on retry).
pub(crate) struct Request {
    pub method: Method,
    pub url: reqwest::Url,
    pub query: Vec<(&'static str, String)>,
    pub body: Option<Vec<u8>>,
    pub lane: LaneKind,
}

/// A successful response.
pub(crate) struct Reply {
    pub status: StatusCode,
    pub body: Vec<u8>,
}

enum Outcome {
    Done(Result<Reply, ApiError>),
    Retry(Duration),
}

impl PortalClient {
    pub(crate) fn new(shared: Arc<Shared>, state: Arc<PortalState>, options: CallOptions) -> Self {
        PortalClient {
            shared,
            state,
            options,
            guard: None,
        }
    }

    /// This handle with a condition checked right before every request is sent, after any wait
    /// for the budget: a worker whose right to write may have lapsed meanwhile (its portal
    /// lease was not renewed in time) has the request withheld instead of sent late.
    pub fn with_send_guard(&self, guard: SendGuard) -> PortalClient {
        PortalClient {
            guard: Some(guard),
            ..self.clone()
        }
    }

    /// The portal.
    pub fn portal_id(&self) -> PortalId {
        self.state.portal
    }

    /// This handle with another priority.
    pub fn with_priority(&self, priority: Priority) -> PortalClient {
        let mut c = self.clone();
        c.options.priority = priority;
        c
    }

    /// This handle with other call options.
    pub fn with_options(&self, options: CallOptions) -> PortalClient {
        PortalClient {
            options,
            ..self.clone()
        }
    }

    /// An interactive handle that returns 429s (and waits longer than `max_wait`) to the
    /// caller instead of waiting: for bounded API read-throughs.
    pub fn interactive(&self, max_wait: Duration) -> PortalClient {
        self.with_options(CallOptions {
            priority: Priority::Interactive,
            pass_through_rate_limits: true,
            max_queue_wait: Some(max_wait),
        })
    }

    /// The portal's budget now.
    pub fn budget(&self) -> BudgetView {
        self.state.budget()
    }

    /// The portal's counters.
    pub fn stats(&self) -> StatsSnapshot {
        self.status().stats
    }

    /// Auth, circuit, budget and counters.
    pub fn status(&self) -> PortalStatus {
        self.state.status()
    }

    /// Whether the portal's credentials need a human (workers should stop).
    pub fn needs_reauth(&self) -> bool {
        matches!(self.state.auth.status(), AuthStatus::NeedsReauth { .. })
    }

    /// Watches the portal's auth status: workers `changed().await` on it to stop cleanly.
    pub fn auth_status(&self) -> watch::Receiver<AuthStatus> {
        self.state.auth.subscribe()
    }

    /// Sends a request through the portal's budget, retrying by policy.
    pub(crate) async fn execute(&self, request: &Request) -> Result<Reply, ApiError> {
        let mut transient_attempts = 0u32;
        let mut rate_limit_retries = 0u32;
        let mut auth_retries = 0u32;
        loop {
            match self
                .attempt(
                    request,
                    &mut transient_attempts,
                    &mut rate_limit_retries,
                    &mut auth_retries,
                )
                .await
            {
                Outcome::Done(result) => return result,
                Outcome::Retry(wait) => {
                    self.state.stats.retry();
                    if !wait.is_zero() {
                        tokio::time::sleep(wait).await;
                    }
                }
            }
        }
    }

    async fn attempt(
        &self,
        request: &Request,
        transient_attempts: &mut u32,
        rate_limit_retries: &mut u32,
        auth_retries: &mut u32,
    ) -> Outcome {
        let state = &*self.state;
        let portal = state.portal;
        let priority = self.options.priority;

        if let Err(retry_in) = state.breaker.lock().check(Instant::now()) {
            return Outcome::Done(Err(ApiError::CircuitOpen { portal, retry_in }));
        }
        if request.lane == LaneKind::General
            && let Err((resets_at, newly)) = state
                .daily
                .lock()
                .check(OffsetDateTime::now_utc(), priority)
        {
            if newly {
                tracing::warn!(portal = %portal, resets_at = %resets_at, "hubspot daily budget spent; parking this portal's non-interactive calls until the reset");
            }
            return Outcome::Done(Err(ApiError::DailyLimit { resets_at }));
        }
        let bearer = match state.auth.bearer(&self.shared).await {
            Ok(b) => b,
            Err(e) => return Outcome::Done(Err(e)),
        };

        let lane = state.lane(request.lane);
        let permit = match lane.acquire(priority, self.options.max_queue_wait).await {
            Ok(p) => p,
            Err(wait) => {
                return Outcome::Done(Err(ApiError::RateLimited {
                    policy: RateLimitPolicy::Local,
                    retry_after: Some(wait),
                    budget: Box::new(state.budget()),
                }));
            }
        };
        if let Some(guard) = &self.guard
            && !guard()
        {
            drop(permit);
            return Outcome::Done(Err(ApiError::Withheld { portal }));
        }
        if request.lane == LaneKind::General {
            state.daily.lock().record_send();
        }
        state.stats.request(request.lane);

        let mut builder = self
            .shared
            .http
            .request(request.method.clone(), request.url.clone())
            .bearer_auth(bearer.token.expose_secret());
        if !request.query.is_empty() {
            builder = builder.query(&request.query);
        }
        if let Some(body) = &request.body {
            builder = builder
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body.clone());
        }
        let sent = builder.send().await;
        let response = match sent {
            Ok(r) => r,
            Err(source) => {
                drop(permit);
                count(portal, request.lane, "error");
                return self.transient(transient_attempts, None, |attempts| ApiError::Transport {
                    attempts,
                    source,
                });
            }
        };
        let status = response.status();
        if request.lane == LaneKind::General {
            let headers = RateLimitHeaders::parse(response.headers());
            if headers.has_window() {
                lane.observe(&headers);
            }
            state.daily.lock().observe(&headers);
        }
        let retry_after = retry_after(response.headers());
        let body = match response.bytes().await {
            Ok(b) => b.to_vec(),
            Err(source) => {
                drop(permit);
                count(portal, request.lane, "error");
                return self.transient(transient_attempts, None, |attempts| ApiError::Transport {
                    attempts,
                    source,
                });
            }
        };
        let sent_at = permit.sent_at;
        drop(permit);
        count(portal, request.lane, status.as_str());
        tracing::trace!(
            portal = %portal,
            lane = request.lane.as_str(),
            method = %request.method,
            path = request.url.path(),
            status = status.as_u16(),
            elapsed_ms = u64::try_from(sent_at.elapsed().as_millis()).unwrap_or(u64::MAX),
            "hubspot request"
        );

        if status.is_success() {
            state.breaker.lock().record_success();
            return Outcome::Done(Ok(Reply { status, body }));
        }
        match status.as_u16() {
            401 => {
                state.breaker.lock().record_success();
                let error = HubspotError::from_body(&body);
                if *auth_retries < AUTH_RETRIES {
                    *auth_retries += 1;
                    if state.auth.generation() != bearer.generation {
                        // New credentials arrived while this request was in flight (another
                        // request's refresh, a re-authorisation): try them.
                        return Outcome::Retry(Duration::ZERO);
                    }
                    if bearer.is_oauth {
                        tracing::info!(portal = %portal, category = error.category(), "hubspot answered 401; refreshing the oauth token");
                        // A refused refresh grant marks the portal NeedsReauth in `refresh`.
                        return match state.auth.refresh(&self.shared, bearer.generation).await {
                            Ok(_) => Outcome::Retry(Duration::ZERO),
                            Err(e) => Outcome::Done(Err(e)),
                        };
                    }
                }
                let reason = format!("{}: {}", error.category(), error.message);
                if bearer.is_oauth {
                    // The refresh grant works, but every token it issued was rejected before
                    // this request could use it: not for a human to fix; try again later.
                    return Outcome::Done(Err(ApiError::TokenRejected { portal, reason }));
                }
                Outcome::Done(Err(state.auth.mark_needs_reauth(bearer.generation, reason)))
            }
            429 => {
                state.breaker.lock().record_success();
                self.rate_limited(request.lane, &body, retry_after, rate_limit_retries)
            }
            423 | 477 | 500..=599 => {
                let error = Box::new(HubspotError::from_body(&body));
                let floor = match status.as_u16() {
                    423 => Some(
                        retry_after
                            .unwrap_or(Duration::ZERO)
                            .max(self.shared.config.retry.locked_wait),
                    ),
                    _ => retry_after,
                };
                let code = status.as_u16();
                self.transient(transient_attempts, floor, |attempts| ApiError::Server {
                    status: code,
                    attempts,
                    error: Some(error),
                })
            }
            code => {
                state.breaker.lock().record_success();
                let error = Box::new(HubspotError::from_body(&body));
                tracing::debug!(portal = %portal, status = code, category = error.category(), correlation_id = error.correlation_id.as_deref().unwrap_or(""), "hubspot rejected the request");
                Outcome::Done(Err(match code {
                    400 => ApiError::Validation(error),
                    403 => ApiError::Forbidden(error),
                    404 => ApiError::NotFound(error),
                    409 => ApiError::Conflict {
                        existing_id: error.existing_id(),
                        error,
                    },
                    _ => ApiError::Rejected {
                        status: code,
                        error,
                    },
                }))
            }
        }
    }

    /// A 5xx/423/477/timeout/connection failure: back off and retry while attempts and the
    /// circuit allow.
    fn transient(
        &self,
        attempts: &mut u32,
        floor: Option<Duration>,
        error: impl FnOnce(u32) -> ApiError,
    ) -> Outcome {
        let state = &*self.state;
        let retry = &self.shared.config.retry;
        state.stats.transient_failure();
        *attempts += 1;
        let opened = state.breaker.lock().record_failure(Instant::now());
        if opened {
            tracing::warn!(portal = %state.portal, "circuit opened after repeated hubspot failures");
        }
        let too_long = floor.is_some_and(|f| f > retry.max_retry_after);
        if *attempts >= retry.max_attempts || opened || too_long {
            let error = error(*attempts);
            tracing::warn!(portal = %state.portal, error = %error, "hubspot call failed after retries");
            return Outcome::Done(Err(error));
        }
        let wait = backoff(
            *attempts - 1,
            retry.backoff_base,
            retry.backoff_cap,
            rand::random::<f64>(),
        );
        let wait = floor.map_or(wait, |f| wait.max(f));
        tracing::debug!(portal = %state.portal, attempt = *attempts, wait_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX), "transient hubspot failure; retrying");
        Outcome::Retry(wait)
    }

    fn rate_limited(
        &self,
        lane_kind: LaneKind,
        body: &[u8],
        retry_after: Option<Duration>,
        retries: &mut u32,
    ) -> Outcome {
        let state = &*self.state;
        let portal = state.portal;
        let error = HubspotError::from_body(body);
        let policy = RateLimitPolicy::from_body(&error);
        state.stats.rate_limited();
        metrics::counter!("hubsync_hubspot_429_total", "portal" => portal.to_string(), "lane" => lane_kind.as_str(), "policy" => policy.as_str().to_owned())
            .increment(1);

        if policy == RateLimitPolicy::Daily {
            let (resets_at, first) = state.daily.lock().park(OffsetDateTime::now_utc());
            if first {
                tracing::warn!(portal = %portal, resets_at = %resets_at, "hubspot daily api limit reached; parking this portal's non-interactive calls until the reset");
            }
            return Outcome::Done(Err(ApiError::DailyLimit { resets_at }));
        }

        let retry = &self.shared.config.retry;
        let jitter = retry.rate_limit_jitter.mul_f64(rand::random::<f64>());
        let wait = state
            .lane(lane_kind)
            .exhausted(retry_after, *retries, jitter);
        let give_up = self.options.pass_through_rate_limits
            || *retries >= retry.max_rate_limit_retries
            || retry_after.is_some_and(|r| r > retry.max_retry_after);
        tracing::debug!(portal = %portal, policy = %policy, wait_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX), correlation_id = error.correlation_id.as_deref().unwrap_or(""), "hubspot answered 429");
        if give_up {
            return Outcome::Done(Err(ApiError::RateLimited {
                policy,
                retry_after: Some(wait),
                budget: Box::new(state.budget()),
            }));
        }
        *retries += 1;
        // The lane itself now blocks every caller until the window frees.
        Outcome::Retry(Duration::ZERO)
    }
}

fn count(portal: PortalId, lane: LaneKind, status: &str) {
    metrics::counter!("hubsync_hubspot_requests_total", "portal" => portal.to_string(), "lane" => lane.as_str(), "status" => status.to_owned())
        .increment(1);
}

/// `Retry-After` in seconds (HubSpot's form; an HTTP date is ignored).
fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let value = headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    let secs: f64 = value.parse().ok()?;
    (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs.min(86_400.0)))
}
