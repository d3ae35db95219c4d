//! The HTTP surface: one entry point that enforces URI and body limits, authenticates, counts
//! and rate-limits, injects API faults, and dispatches to the CRM, OAuth, webhooks-management
//! and admin handlers. Every failure is answered in HubSpot's error shape.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use rand::Rng;
use serde_json::Value;

use crate::error::{ApiError, correlation_id};
use crate::limits::{Admitted, BurstParams, Policy};
use crate::model::now_ms;
use crate::state::{Portal, Shared, TokenInfo, TokenKind};
use crate::{admin, crm, oauth, webhooks_api};

/// How long a request body may take to arrive.
const BODY_TIMEOUT: Duration = Duration::from_secs(30);

/// Builds the router serving everything.
pub fn router(shared: Arc<Shared>) -> Router {
    Router::new().fallback(entry).with_state(shared).layer(
        tower_http::catch_panic::CatchPanicLayer::custom(panic_response),
    )
}

/// A handler bug must still answer in HubSpot's error shape rather than drop the connection.
fn panic_response(_: Box<dyn std::any::Any + Send + 'static>) -> Response {
    tracing::error!("request handler panicked");
    ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "INTERNAL_ERROR",
        "internal error",
    )
    .into_response()
}

async fn entry(State(sh): State<Arc<Shared>>, req: Request) -> Response {
    let mut resp = match handle(&sh, req).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    };
    if !resp.headers().contains_key("x-hubspot-correlation-id")
        && let Ok(v) = HeaderValue::from_str(&correlation_id())
    {
        resp.headers_mut().insert("x-hubspot-correlation-id", v);
    }
    resp
}

/// A parsed incoming request.
#[derive(Debug)]
pub struct Req {
    /// Method.
    pub method: Method,
    /// Path segments (no empty ones).
    pub segs: Vec<String>,
    /// Decoded query pairs.
    pub query: Vec<(String, String)>,
    /// Headers.
    pub headers: HeaderMap,
    /// Body.
    pub body: Bytes,
}

impl Req {
    /// The first value of a query parameter.
    pub fn q(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// All comma-separated values of a (possibly repeated) query parameter.
    pub fn q_list(&self, name: &str) -> Vec<String> {
        self.query
            .iter()
            .filter(|(k, _)| k == name)
            .flat_map(|(_, v)| v.split(',').map(|s| s.trim().to_owned()))
            .filter(|s| !s.is_empty())
            .collect()
    }

    /// A boolean query parameter.
    pub fn q_bool(&self, name: &str) -> bool {
        self.q(name).is_some_and(|v| v.eq_ignore_ascii_case("true"))
    }

    /// The body as a typed value.
    pub fn parse<T: serde::de::DeserializeOwned>(&self) -> Result<T, ApiError> {
        let body: &[u8] = if self.body.iter().all(u8::is_ascii_whitespace) {
            b"{}"
        } else {
            &self.body
        };
        serde_json::from_slice(body).map_err(|e| ApiError::bad_json(&e))
    }
}

async fn handle(sh: &Arc<Shared>, req: Request) -> Result<Response, ApiError> {
    let (max_uri, max_body) = {
        let s = sh.settings.read();
        (s.max_uri_chars, s.max_body_bytes)
    };
    let (parts, body) = req.into_parts();
    let uri_len = parts.uri.path().len() + parts.uri.query().map_or(0, |q| q.len() + 1);
    if uri_len > max_uri {
        return Err(ApiError::uri_too_long());
    }
    let declared = parts
        .headers
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > max_body) {
        return Err(ApiError::too_large(max_body));
    }
    // A body that never completes must not hold the request forever.
    let body = tokio::time::timeout(BODY_TIMEOUT, axum::body::to_bytes(body, max_body))
        .await
        .map_err(|_| ApiError::validation("request body was not received in time"))?
        .map_err(|_| ApiError::too_large(max_body))?;
    let segs: Vec<String> = parts
        .uri
        .path()
        .split('/')
        .filter(|s| !s.is_empty())
        .map(percent_decode)
        .collect();
    let query: Vec<(String, String)> = parts
        .uri
        .query()
        .map(|q| serde_urlencoded::from_str(q).unwrap_or_default())
        .unwrap_or_default();
    let req = Req {
        method: parts.method,
        segs,
        query,
        headers: parts.headers,
        body,
    };
    let first = req.segs.first().map(String::as_str).unwrap_or("");
    match first {
        "_emulator" => admin::handle_http(sh, &req).await,
        "oauth" => oauth::handle(sh, &req),
        "webhooks" => webhooks_api::handle(sh, &req),
        "crm" => crm_entry(sh, &req).await,
        _ => Err(ApiError::route_not_found(
            req.method.as_str(),
            &format!("/{}", req.segs.join("/")),
        )),
    }
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Some(b) = std::str::from_utf8(&bytes[i + 1..i + 3])
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Resolves the bearer token of a request.
pub fn authenticate(sh: &Shared, headers: &HeaderMap) -> Result<TokenInfo, ApiError> {
    let token = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim);
    let Some(token) = token else {
        sh.stats.global(|s| s.unauthenticated += 1);
        return Err(ApiError::unauthenticated());
    };
    let info = sh.tokens.read().access.get(token).cloned();
    let Some(info) = info else {
        sh.stats.global(|s| s.unauthenticated += 1);
        return Err(ApiError::unauthenticated());
    };
    if let Some(exp) = info.expires_at {
        let now = now_ms();
        if now >= exp {
            sh.stats.global(|s| s.unauthenticated += 1);
            return Err(ApiError::expired(((now - exp) / 1000).max(0)));
        }
    }
    Ok(info)
}

/// The lane a CRM request is counted in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lane {
    /// Everything except search.
    General,
    /// CRM search.
    Search,
}

async fn crm_entry(sh: &Arc<Shared>, req: &Req) -> Result<Response, ApiError> {
    let auth = authenticate(sh, &req.headers)?;
    let Some(portal) = sh.portal(auth.portal) else {
        return Err(ApiError::unauthenticated());
    };
    let route = crm::route(req)?;
    let lane = if route.is_search() {
        Lane::Search
    } else {
        Lane::General
    };
    let op = route.operation();
    sh.stats.portal(portal.id, |s| {
        s.requests += 1;
        *s.requests_by_app.entry(auth.app).or_default() += 1;
        let l = if lane == Lane::Search {
            "search"
        } else {
            "general"
        };
        *s.requests_by_lane.entry(l.to_owned()).or_default() += 1;
        *s.requests_by_operation.entry(op.clone()).or_default() += 1;
    });
    let admitted = admit(sh, &portal, &auth, lane)?;
    inject_faults(sh, &portal).await?;
    let mut resp = match crm::execute(sh, &portal, &auth, route, req) {
        Ok(r) => r,
        Err(e) => e.into_response(),
    };
    let after_write = sh.faults.read().api_5xx_after_write_pct;
    if after_write > 0.0 && resp.status().is_success() {
        let hit = portal.api_rng.lock().random::<f64>() * 100.0 < after_write;
        if hit {
            sh.stats
                .portal(portal.id, |s| s.injected_5xx_after_write += 1);
            resp = ApiError::injected_5xx(StatusCode::BAD_GATEWAY).into_response();
        }
    }
    if let Some(a) = admitted {
        add_rate_headers(resp.headers_mut(), &a);
    }
    Ok(resp)
}

/// Applies the rate limits; returns header values for non-search requests.
fn admit(
    sh: &Shared,
    portal: &Portal,
    auth: &TokenInfo,
    lane: Lane,
) -> Result<Option<Admitted>, ApiError> {
    let settings = sh.settings.read().clone();
    let now = now_ms();
    let refused = match lane {
        Lane::Search => match portal.limiter.lock().admit_search(
            now,
            settings.search_per_second,
            settings.search_window_ms,
        ) {
            Ok(()) => return Ok(None),
            Err(r) => r,
        },
        Lane::General => {
            let cfg = portal.cfg.read().clone();
            let max = cfg.tier.burst();
            let share = sh.faults.read().competing_app_share_pct.clamp(0.0, 100.0);
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            let competing = (f64::from(max) * share / 100.0).round() as u32;
            // A competing app only eats into our budget when the portal shares one.
            let (key, competing) = match settings.burst_scope {
                crate::config::BurstScope::Portal => (0, competing),
                crate::config::BurstScope::App => (auth.app, 0),
            };
            let daily = (auth.kind == TokenKind::Private)
                .then(|| cfg.daily_limit.unwrap_or(cfg.tier.daily()));
            let params = BurstParams {
                key,
                max,
                window_ms: settings.burst_window_ms,
                competing,
                daily,
            };
            match portal.limiter.lock().admit(now, params) {
                Ok(a) => return Ok(Some(a)),
                Err(r) => r,
            }
        }
    };
    sh.stats.portal(portal.id, |s| {
        *s.rate_limited
            .entry(refused.policy.name().to_owned())
            .or_default() += 1
    });
    let group = match (refused.policy, auth.kind) {
        (Policy::TenSecondlyRolling, TokenKind::Private) => {
            format!("publicapi:private-app-api-calls-ten-secondly:{}", portal.id)
        }
        (Policy::TenSecondlyRolling, TokenKind::OAuth) => {
            format!("publicapi:oauth-api-calls-ten-secondly:{}", portal.id)
        }
        (Policy::Daily, _) => format!("publicapi:private-app-api-calls-daily:{}", portal.id),
        (Policy::Secondly, _) => format!("publicapi:search-secondly:{}", portal.id),
    };
    let retry = settings
        .retry_after_header
        .then(|| refused.retry_in_ms.div_ceil(1000).max(1));
    Err(ApiError::rate_limited(refused.policy.name(), group, retry))
}

fn add_rate_headers(h: &mut HeaderMap, a: &Admitted) {
    let mut put = |k: &'static str, v: String| {
        if let Ok(v) = HeaderValue::from_str(&v) {
            h.insert(k, v);
        }
    };
    put("x-hubspot-ratelimit-max", a.max.to_string());
    put("x-hubspot-ratelimit-remaining", a.remaining.to_string());
    put(
        "x-hubspot-ratelimit-interval-milliseconds",
        a.interval_ms.to_string(),
    );
    put("x-hubspot-ratelimit-secondly", a.secondly.0.to_string());
    put(
        "x-hubspot-ratelimit-secondly-remaining",
        a.secondly.1.to_string(),
    );
    if let Some((daily, left)) = a.daily {
        put("x-hubspot-ratelimit-daily", daily.to_string());
        put("x-hubspot-ratelimit-daily-remaining", left.to_string());
    }
}

async fn inject_faults(sh: &Shared, portal: &Portal) -> Result<(), ApiError> {
    let f = sh.faults.read().clone();
    if f.api_latency_pct <= 0.0 && f.api_5xx_pct <= 0.0 {
        return Ok(());
    }
    let (slow, fail, which) = {
        let mut rng = portal.api_rng.lock();
        let slow = f.api_latency_pct > 0.0 && rng.random::<f64>() * 100.0 < f.api_latency_pct;
        let fail = f.api_5xx_pct > 0.0 && rng.random::<f64>() * 100.0 < f.api_5xx_pct;
        (slow, fail, rng.random_range(0..3u8))
    };
    if slow {
        sh.stats.portal(portal.id, |s| s.injected_latency += 1);
        tokio::time::sleep(Duration::from_millis(f.api_latency_ms)).await;
    }
    if fail {
        sh.stats.portal(portal.id, |s| s.injected_5xx += 1);
        let status = match which {
            0 => StatusCode::INTERNAL_SERVER_ERROR,
            1 => StatusCode::BAD_GATEWAY,
            _ => StatusCode::SERVICE_UNAVAILABLE,
        };
        return Err(ApiError::injected_5xx(status));
    }
    Ok(())
}

/// A JSON response with a status.
pub fn json_resp(status: StatusCode, body: Value) -> Response {
    (status, axum::Json(body)).into_response()
}
