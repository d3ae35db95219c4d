//! IETF rate-limit headers (`RateLimit-Limit`, `RateLimit-Remaining`, `RateLimit-Reset`,
//! `RateLimit-Policy`) describing a portal's HubSpot budget as hubsync sees it: the general
//! (10-second) window, normalised from HubSpot's `X-HubSpot-RateLimit-*` headers by the client.

use axum::http::{HeaderMap, HeaderName, HeaderValue};
use hubsync_hubspot::BudgetView;

/// `RateLimit-Limit`: requests per window.
pub const LIMIT: HeaderName = HeaderName::from_static("ratelimit-limit");
/// `RateLimit-Remaining`: requests left in the window.
pub const REMAINING: HeaderName = HeaderName::from_static("ratelimit-remaining");
/// `RateLimit-Reset`: seconds until a request is allowed again.
pub const RESET: HeaderName = HeaderName::from_static("ratelimit-reset");
/// `RateLimit-Policy`: `<limit>;w=<window seconds>`.
pub const POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");

/// Sets the headers for `budget`, replacing any already there.
pub fn insert(headers: &mut HeaderMap, budget: &BudgetView) {
    let reset = budget.reset_in_ms.div_ceil(1000);
    let window = budget.window_ms.div_ceil(1000).max(1);
    headers.insert(LIMIT, HeaderValue::from(budget.limit));
    headers.insert(REMAINING, HeaderValue::from(budget.remaining));
    headers.insert(RESET, HeaderValue::from(reset));
    if let Ok(v) = HeaderValue::from_str(&format!("{};w={window}", budget.limit)) {
        headers.insert(POLICY, v);
    }
}
