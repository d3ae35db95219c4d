//! Errors: HubSpot's error body ([`HubspotError`]) and the one error enum every call returns
//! ([`ApiError`]), shaped so callers can decide: retry later, dead-letter, re-authorise, stop.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use hubsync_core::{HubspotId, PortalId};
use serde::{Deserialize, Deserializer};
use time::OffsetDateTime;

use crate::BudgetView;

/// HubSpot's error body, used both for whole-request errors and for the per-input errors of
/// a 207 batch response. Every field is optional, as HubSpot advises.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HubspotError {
    /// `"error"` on live responses.
    #[serde(default)]
    pub status: Option<String>,
    /// `VALIDATION_ERROR`, `OBJECT_NOT_FOUND`, `CONFLICT`, `MISSING_SCOPES`, ...
    #[serde(default)]
    pub category: Option<String>,
    /// A finer-grained reason; a string or an object depending on the endpoint.
    #[serde(default)]
    pub sub_category: Option<serde_json::Value>,
    /// Human-readable message.
    #[serde(default)]
    pub message: String,
    /// Structured context, e.g. `ids`, `objectWriteTraceId`, `propertyName`.
    #[serde(default, deserialize_with = "de_context")]
    pub context: BTreeMap<String, Vec<String>>,
    /// HubSpot's correlation id, for support requests.
    #[serde(default)]
    pub correlation_id: Option<String>,
    /// Detailed errors (`{message, code, context}`).
    #[serde(default)]
    pub errors: Vec<ErrorDetail>,
    /// The input id a batch error is about, when HubSpot says.
    #[serde(default)]
    pub id: Option<String>,
    /// 429 bodies: `RATE_LIMIT` (they carry `errorType`, not `category`).
    #[serde(default)]
    pub error_type: Option<String>,
    /// 429 bodies: which limit was hit.
    #[serde(default)]
    pub policy_name: Option<String>,
    /// OAuth errors: RFC 6749 `error` (`invalid_grant`).
    #[serde(default)]
    pub error: Option<String>,
    /// OAuth errors: `error_description`.
    #[serde(default, rename = "error_description")]
    pub error_description: Option<String>,
}

/// One entry of [`HubspotError::errors`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ErrorDetail {
    /// Message.
    #[serde(default)]
    pub message: String,
    /// Code such as `PROPERTY_DOESNT_EXIST` or `INVALID_INTEGER`.
    #[serde(default)]
    pub code: Option<String>,
    /// Context such as `propertyName`.
    #[serde(default, deserialize_with = "de_context")]
    pub context: BTreeMap<String, Vec<String>>,
}

impl HubspotError {
    /// Parses an error body, falling back to the raw text as the message.
    pub(crate) fn from_body(body: &[u8]) -> Self {
        serde_json::from_slice(body).unwrap_or_else(|_| HubspotError {
            message: String::from_utf8_lossy(body).chars().take(512).collect(),
            ..HubspotError::default()
        })
    }

    /// The category, or `""`.
    pub fn category(&self) -> &str {
        self.category.as_deref().unwrap_or_default()
    }

    /// `context.objectWriteTraceId`: which batch-create inputs this error is about.
    pub fn object_write_trace_ids(&self) -> &[String] {
        self.context
            .get("objectWriteTraceId")
            .map_or(&[], Vec::as_slice)
    }

    /// `context.ids` (or the single `id`): which inputs this error is about.
    pub fn ids(&self) -> Vec<&str> {
        let mut ids: Vec<&str> = self
            .context
            .get("ids")
            .map(|v| v.iter().map(String::as_str).collect())
            .unwrap_or_default();
        if let Some(id) = self.id.as_deref() {
            ids.push(id);
        }
        if let Some(v) = self.context.get("id") {
            ids.extend(v.iter().map(String::as_str));
        }
        ids
    }

    /// The record id HubSpot names in a 409 (`"Contact already exists. Existing ID: 123"`).
    pub fn existing_id(&self) -> Option<HubspotId> {
        let at = self.message.find("Existing ID:")?;
        let digits: String = self.message[at + "Existing ID:".len()..]
            .trim_start()
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        digits.parse().ok()
    }

    /// The property names HubSpot complained about (`PROPERTY_DOESNT_EXIST`, `INVALID_INTEGER`).
    pub fn property_names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = Vec::new();
        for detail in &self.errors {
            if let Some(v) = detail.context.get("propertyName") {
                names.extend(v.iter().map(String::as_str));
            }
        }
        if let Some(v) = self.context.get("propertyName") {
            names.extend(v.iter().map(String::as_str));
        }
        names.sort_unstable();
        names.dedup();
        names
    }
}

impl fmt::Display for HubspotError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.category {
            Some(c) => write!(f, "{c}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

/// `context` is documented as `map<string, string[]>`; accept scalars too.
fn de_context<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<String, Vec<String>>, D::Error> {
    let raw: Option<BTreeMap<String, serde_json::Value>> = Option::deserialize(d)?;
    let scalar = |v: serde_json::Value| match v {
        serde_json::Value::String(s) => s,
        other => other.to_string(),
    };
    Ok(raw
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| {
            let values = match v {
                serde_json::Value::Array(items) => items.into_iter().map(scalar).collect(),
                serde_json::Value::Null => Vec::new(),
                other => vec![scalar(other)],
            };
            (k, values)
        })
        .collect())
}

/// Which rate limit a 429 (or our own limiter) reported.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum RateLimitPolicy {
    /// The burst window (`TEN_SECONDLY_ROLLING`).
    TenSecondlyRolling,
    /// A per-second limit (`SECONDLY`; the search lane).
    Secondly,
    /// The daily allowance (`DAILY`).
    Daily,
    /// Our own limiter had no slot within the caller's maximum wait; no request was sent.
    Local,
    /// A policy name this client does not know.
    Other(String),
}

impl RateLimitPolicy {
    /// Reads a 429 body's `policyName` (and, for search, the "secondly limit" message).
    pub fn from_body(body: &HubspotError) -> Self {
        match body
            .policy_name
            .as_deref()
            .map(str::to_ascii_uppercase)
            .as_deref()
        {
            Some("TEN_SECONDLY_ROLLING") => RateLimitPolicy::TenSecondlyRolling,
            Some("SECONDLY") => RateLimitPolicy::Secondly,
            Some("DAILY") => RateLimitPolicy::Daily,
            Some(other) => RateLimitPolicy::Other(other.to_owned()),
            None if body.message.contains("secondly limit") => RateLimitPolicy::Secondly,
            None if body.message.contains("daily limit") => RateLimitPolicy::Daily,
            None => RateLimitPolicy::Other(String::new()),
        }
    }

    /// A stable name for metrics labels.
    pub fn as_str(&self) -> &str {
        match self {
            RateLimitPolicy::TenSecondlyRolling => "TEN_SECONDLY_ROLLING",
            RateLimitPolicy::Secondly => "SECONDLY",
            RateLimitPolicy::Daily => "DAILY",
            RateLimitPolicy::Local => "LOCAL",
            RateLimitPolicy::Other(name) if name.is_empty() => "UNKNOWN",
            RateLimitPolicy::Other(name) => name,
        }
    }
}

impl fmt::Display for RateLimitPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Everything a HubSpot call can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// Rate limited and not retried: the caller opted out of waiting, or retries ran out.
    #[error("rate limited ({policy}), retry after {retry_after:?}")]
    RateLimited {
        /// Which limit.
        policy: RateLimitPolicy,
        /// When to try again, if known.
        retry_after: Option<Duration>,
        /// The portal's budget as this client sees it now.
        budget: Box<BudgetView>,
    },
    /// The portal's daily allowance is spent; non-interactive calls are parked until the reset.
    #[error("daily api limit reached, parked until {resets_at}")]
    DailyLimit {
        /// When the daily budget resets.
        resets_at: OffsetDateTime,
    },
    /// The portal's credentials were rejected or could not be refreshed; every call fails fast
    /// until new credentials are registered.
    #[error("portal {portal} needs re-authorisation: {reason}")]
    NeedsReauth {
        /// The portal.
        portal: PortalId,
        /// What HubSpot said.
        reason: String,
    },
    /// HubSpot rejected a token that is no longer the portal's latest, or an OAuth token issued
    /// by a refresh grant that still works: credentials changed (a refresh, a re-authorisation)
    /// while the request was in flight, more often than it retries. Transient: the portal stays
    /// authorised and the caller tries again later.
    #[error(
        "portal {portal}: hubspot rejected a token while the credentials were changing ({reason}); try again"
    )]
    TokenRejected {
        /// The portal.
        portal: PortalId,
        /// What HubSpot said.
        reason: String,
    },
    /// 400: invalid input (unknown property, wrong type, ...). Not retried.
    #[error("hubspot rejected the request as invalid: {0}")]
    Validation(Box<HubspotError>),
    /// 404: the record (or property) does not exist.
    #[error("not found: {0}")]
    NotFound(Box<HubspotError>),
    /// 409: already exists (a duplicate email, a unique property value, an existing property).
    #[error("conflict (existing id {existing_id:?}): {error}")]
    Conflict {
        /// The record HubSpot named in the message, if any.
        existing_id: Option<HubspotId>,
        /// The body.
        error: Box<HubspotError>,
    },
    /// 403: the token lacks a scope.
    #[error("forbidden: {0}")]
    Forbidden(Box<HubspotError>),
    /// Any other 4xx. Not retried.
    #[error("hubspot answered {status}: {error}")]
    Rejected {
        /// HTTP status.
        status: u16,
        /// The body.
        error: Box<HubspotError>,
    },
    /// 5xx, 423 or 477 still failing after the retries.
    #[error("hubspot server error {status} after {attempts} attempt(s)")]
    Server {
        /// The last HTTP status.
        status: u16,
        /// Attempts made.
        attempts: u32,
        /// The last body, if it parsed.
        error: Option<Box<HubspotError>>,
    },
    /// Connection failures and timeouts, still failing after the retries.
    #[error("transport error after {attempts} attempt(s): {source}")]
    Transport {
        /// Attempts made.
        attempts: u32,
        /// The last error.
        #[source]
        source: reqwest::Error,
    },
    /// The portal's circuit is open after repeated failures; nothing was sent.
    #[error("circuit open for portal {portal}, retry in {retry_in:?}")]
    CircuitOpen {
        /// The portal.
        portal: PortalId,
        /// Time left in the cool-down.
        retry_in: Duration,
    },
    /// The OAuth token endpoint refused a grant.
    #[error("oauth token request failed ({status}): {error}")]
    OAuth {
        /// HTTP status.
        status: u16,
        /// The body (`error`, `error_description`, `status`, `message`).
        error: Box<HubspotError>,
    },
    /// A success response whose body did not have the documented shape.
    #[error("unexpected response body for {what}: {source}")]
    Decode {
        /// What was being read.
        what: &'static str,
        /// The parse error.
        #[source]
        source: serde_json::Error,
    },
    /// The request breaks a documented limit (batch size, filter counts, ...); nothing was sent.
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// No portal with this id is registered with the client.
    #[error("portal {0} is not registered")]
    UnknownPortal(PortalId),
    /// The handle's send guard refused the request right before it was to be sent (see
    /// `PortalClient::with_send_guard`); nothing was sent.
    #[error("request for portal {portal} withheld: the caller may no longer own the portal")]
    Withheld {
        /// The portal.
        portal: PortalId,
    },
}

impl ApiError {
    /// HubSpot's error body, when the error carries one.
    pub fn hubspot_error(&self) -> Option<&HubspotError> {
        match self {
            ApiError::Validation(e) | ApiError::NotFound(e) | ApiError::Forbidden(e) => Some(e),
            ApiError::Conflict { error, .. }
            | ApiError::Rejected { error, .. }
            | ApiError::OAuth { error, .. } => Some(error),
            ApiError::Server { error, .. } => error.as_deref(),
            _ => None,
        }
    }

    /// Whether the failure is about this request's content (dead-letter it) rather than about
    /// the portal or the network (try again later).
    pub fn is_permanent_for_request(&self) -> bool {
        matches!(
            self,
            ApiError::Validation(_)
                | ApiError::NotFound(_)
                | ApiError::Conflict { .. }
                | ApiError::Rejected { .. }
                | ApiError::InvalidRequest(_)
                | ApiError::Decode { .. }
        )
    }

    /// Whether the portal as a whole cannot be served now (stop its workers). A withheld
    /// request counts: nothing more may be sent for the portal by this caller.
    pub fn is_portal_blocked(&self) -> bool {
        matches!(
            self,
            ApiError::NeedsReauth { .. }
                | ApiError::DailyLimit { .. }
                | ApiError::CircuitOpen { .. }
                | ApiError::Forbidden(_)
                | ApiError::Withheld { .. }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conflict_message_yields_the_existing_id() {
        let e = HubspotError::from_body(
            br#"{"status":"error","message":"Contact already exists. Existing ID: 37765128953","correlationId":"2dea5219-0000","category":"CONFLICT"}"#,
        );
        assert_eq!(e.existing_id(), Some(HubspotId(37765128953)));
        assert_eq!(e.category(), "CONFLICT");
    }

    #[test]
    fn validation_body_names_the_bad_property() {
        let e = HubspotError::from_body(br#"{"status":"error","message":"Property values were not valid: [...]","correlationId":"c","errors":[{"message":"Property \"testproperty\" does not exist","code":"PROPERTY_DOESNT_EXIST","context":{"propertyName":["testproperty"]}}],"category":"VALIDATION_ERROR"}"#);
        assert_eq!(e.property_names(), vec!["testproperty"]);
        assert_eq!(e.errors[0].code.as_deref(), Some("PROPERTY_DOESNT_EXIST"));
    }

    #[test]
    fn batch_error_context_gives_trace_ids_and_ids() {
        let e: HubspotError = serde_json::from_str(
            r#"{"status":"error","category":"OBJECT_NOT_FOUND","message":"x","context":{"ids":["1","2"],"objectWriteTraceId":"t-9"}}"#,
        )
        .unwrap();
        assert_eq!(e.ids(), vec!["1", "2"]);
        assert_eq!(e.object_write_trace_ids(), ["t-9".to_owned()]);
    }

    #[test]
    fn rate_limit_policies_are_read_from_the_body() {
        let daily = HubspotError::from_body(br#"{"status":"error","message":"You have reached your daily limit.","errorType":"RATE_LIMIT","correlationId":"c","policyName":"DAILY","requestId":"r"}"#);
        assert_eq!(RateLimitPolicy::from_body(&daily), RateLimitPolicy::Daily);
        let burst = HubspotError::from_body(br#"{"status":"error","message":"You have reached your ten_secondly_rolling limit.","errorType":"RATE_LIMIT","policyName":"TEN_SECONDLY_ROLLING","groupName":"publicapi:x"}"#);
        assert_eq!(
            RateLimitPolicy::from_body(&burst),
            RateLimitPolicy::TenSecondlyRolling
        );
        let search = HubspotError::from_body(br#"{"status":"error","message":"You have reached your secondly limit.","errorType":"RATE_LIMIT"}"#);
        assert_eq!(
            RateLimitPolicy::from_body(&search),
            RateLimitPolicy::Secondly
        );
        assert_eq!(
            HubspotError::from_body(b"<html>bad gateway</html>").message,
            "<html>bad gateway</html>"
        );
    }
}
