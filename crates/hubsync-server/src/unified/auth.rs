//! API keys and portal scoping.
//!
//! A key is `hsk_` followed by 64 hex digits of OS randomness; only its SHA-256 (lowercase hex)
//! is stored, with the portals it may touch. Every request names one portal
//! (`X-Hubsync-Portal` header or `portal_id` query parameter); a key that is not scoped to it
//! gets 403 whether or not the portal exists, so a key learns nothing about other portals.
//!
//! Lookups are cached for a short time (see [`UnifiedConfig::auth_cache_ttl`]): a revoked key
//! stops working within that time.
//!
//! [`UnifiedConfig::auth_cache_ttl`]: super::UnifiedConfig::auth_cache_ttl

use std::collections::HashMap;
use std::io::Read;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, StatusCode, Uri, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use hubsync_core::PortalId;
use hubsync_hubspot::BudgetView;
use hubsync_store::{ApiKey, Store, StoreError};
use sha2::{Digest, Sha256};

use super::error::ApiError;
use super::{Shared, ratelimit};

/// The header naming the portal of a request.
pub const PORTAL_HEADER: HeaderName = HeaderName::from_static("x-hubsync-portal");
/// The query parameter naming the portal of a request.
pub const PORTAL_PARAM: &str = "portal_id";
/// The prefix of every key, so that a leaked key is recognisable.
pub const KEY_PREFIX: &str = "hsk_";

/// Why a key could not be created.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The operating system's random source could not be read.
    #[error("cannot read the os random source: {0}")]
    Random(#[from] std::io::Error),
    /// The store refused the key.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Creates an API key named `name` for `portals` and returns the plaintext key. It is shown
/// only here: the store keeps its SHA-256 hash.
pub async fn create_api_key(
    store: &dyn Store,
    name: &str,
    portals: &[PortalId],
) -> Result<String, KeyError> {
    let mut bytes = [0u8; 32];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    let key = format!("{KEY_PREFIX}{}", hex::encode(bytes));
    let stored = store.create_api_key(name, &hash_key(&key), portals).await?;
    tracing::info!(key_id = stored.id, name, portals = ?portals, "api key created");
    Ok(key)
}

/// The stored form of a key: lowercase hex SHA-256.
pub fn hash_key(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

/// Who is asking, about which portal: put into the request by [`gate`].
#[derive(Debug, Clone, Copy)]
pub struct Caller {
    /// The portal the request names (the key is scoped to it and it exists).
    pub portal: PortalId,
    /// The key's row id (for logs).
    pub key_id: i64,
    /// The budget to report while the HubSpot client does not know the portal: its configured
    /// limits, untouched.
    pub fallback_budget: Option<BudgetView>,
}

impl Caller {
    /// The portal's budget as hubsync sees it: the HubSpot client's view when the portal is
    /// registered with it, else its configured limits.
    pub fn budget(&self, shared: &Shared) -> Option<BudgetView> {
        shared
            .engine
            .hubspot
            .budget(self.portal)
            .or(self.fallback_budget)
    }
}

/// Cached lookups of keys and portals.
#[derive(Debug, Default)]
pub struct AuthCache {
    keys: RwLock<HashMap<String, (Option<ApiKey>, Instant)>>,
    /// Known portals, with the budget to report for a portal HubSpot's client does not know.
    portals: RwLock<HashMap<PortalId, (Option<BudgetView>, Instant)>>,
}

/// Caps the caches, so that a flood of made-up keys cannot grow them without bound.
const CACHE_MAX: usize = 10_000;

impl AuthCache {
    fn cached<K: std::hash::Hash + Eq, V: Clone>(
        map: &RwLock<HashMap<K, (V, Instant)>>,
        key: &K,
        ttl: Duration,
    ) -> Option<V> {
        let guard = map.read().ok()?;
        let (value, at) = guard.get(key)?;
        (at.elapsed() < ttl).then(|| value.clone())
    }

    fn remember<K: std::hash::Hash + Eq, V>(
        map: &RwLock<HashMap<K, (V, Instant)>>,
        key: K,
        value: V,
        ttl: Duration,
    ) {
        if ttl.is_zero() {
            return;
        }
        if let Ok(mut guard) = map.write() {
            if guard.len() >= CACHE_MAX {
                guard.retain(|_, (_, at)| at.elapsed() < ttl);
                if guard.len() >= CACHE_MAX {
                    guard.clear();
                }
            }
            guard.insert(key, (value, Instant::now()));
        }
    }
}

/// The key a request presents (`Authorization: Bearer <key>`).
fn bearer(headers: &HeaderMap) -> Result<&str, ApiError> {
    let unauthorized =
        |m: &str| ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", m).field("authorization");
    let value = headers
        .get(header::AUTHORIZATION)
        .ok_or_else(|| unauthorized("missing `Authorization: Bearer <api key>` header"))?;
    let text = value
        .to_str()
        .map_err(|_| unauthorized("malformed authorization header"))?;
    let (scheme, key) = text
        .split_once(' ')
        .ok_or_else(|| unauthorized("expected `Authorization: Bearer <api key>`"))?;
    if !scheme.eq_ignore_ascii_case("bearer") || key.trim().is_empty() {
        return Err(unauthorized("expected `Authorization: Bearer <api key>`"));
    }
    Ok(key.trim())
}

/// The portal a request names, from the header or the query.
fn requested_portal(headers: &HeaderMap, uri: &Uri) -> Result<PortalId, ApiError> {
    let from_header = match headers.get(PORTAL_HEADER) {
        Some(v) => Some(
            v.to_str()
                .ok()
                .and_then(|s| s.parse::<PortalId>().ok())
                .ok_or_else(|| {
                    ApiError::bad_request(
                        "invalid_value",
                        "the portal id must be a positive integer",
                    )
                    .field(PORTAL_HEADER.as_str())
                })?,
        ),
        None => None,
    };
    let mut from_query = None;
    for (k, v) in super::query_pairs(uri)? {
        if k == PORTAL_PARAM {
            let id = v.parse::<PortalId>().map_err(|_| {
                ApiError::bad_request("invalid_value", "the portal id must be a positive integer")
                    .field(PORTAL_PARAM)
            })?;
            from_query = Some(id);
        }
    }
    match (from_header, from_query) {
        (Some(a), Some(b)) if a != b => Err(ApiError::bad_request(
            "conflicting_portal",
            "the portal header and the portal_id parameter name different portals",
        )
        .field(PORTAL_PARAM)),
        (Some(p), _) | (None, Some(p)) => Ok(p),
        (None, None) => Err(ApiError::bad_request(
            "missing_portal",
            "name the portal with the `X-Hubsync-Portal` header or the `portal_id` parameter",
        )
        .field(PORTAL_HEADER.as_str())),
    }
}

impl Shared {
    /// Authenticates a request and checks its portal.
    async fn caller(&self, headers: &HeaderMap, uri: &Uri) -> Result<Caller, ApiError> {
        let key = bearer(headers)?;
        let portal = requested_portal(headers, uri)?;
        let hash = hash_key(key);
        let ttl = self.config.auth_cache_ttl;
        let found = match AuthCache::cached(&self.auth.keys, &hash, ttl) {
            Some(found) => found,
            None => {
                let found = self.engine.store.find_api_key(&hash).await?;
                AuthCache::remember(&self.auth.keys, hash, found.clone(), ttl);
                found
            }
        };
        let key = found.ok_or_else(|| {
            ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", "unknown api key")
                .field("authorization")
        })?;
        if !key.portals.contains(&portal) {
            tracing::info!(key_id = key.id, %portal, "api key used outside its portals");
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "portal_forbidden",
                format!("this api key may not access portal {portal}"),
            )
            .field(PORTAL_HEADER.as_str()));
        }
        let fallback = match AuthCache::cached(&self.auth.portals, &portal, ttl) {
            Some(budget) => budget,
            None => {
                let stored = self.engine.store.get_portal(portal).await?.ok_or_else(|| {
                    ApiError::not_found(format!("portal {portal} is not connected to hubsync"))
                        .field(PORTAL_HEADER.as_str())
                })?;
                let limits = hubsync_engine::setup::limits(&stored);
                let budget = BudgetView {
                    limit: limits.general_max,
                    remaining: limits.general_max,
                    window_ms: u64::try_from(limits.general_window.as_millis()).unwrap_or(u64::MAX),
                    reset_in_ms: 0,
                    daily_remaining: limits.daily_limit,
                    in_flight: 0,
                    parked_until: None,
                    search_limit: limits.search_max,
                    search_remaining: limits.search_max,
                };
                AuthCache::remember(&self.auth.portals, portal, Some(budget), ttl);
                Some(budget)
            }
        };
        Ok(Caller {
            portal,
            key_id: key.id,
            fallback_budget: fallback,
        })
    }
}

/// Middleware of every resource route: authenticates, checks the portal, and stamps the
/// portal's rate-limit headers on the answer (a 429 keeps the budget HubSpot's answer left).
pub async fn gate(State(shared): State<Arc<Shared>>, mut request: Request, next: Next) -> Response {
    let caller = match shared.caller(request.headers(), request.uri()).await {
        Ok(caller) => caller,
        Err(e) => return e.into_response(),
    };
    request.extensions_mut().insert(caller);
    let mut response = next.run(request).await;
    if !response.headers().contains_key(ratelimit::LIMIT)
        && let Some(budget) = caller.budget(&shared)
    {
        ratelimit::insert(response.headers_mut(), &budget);
    }
    response
}
