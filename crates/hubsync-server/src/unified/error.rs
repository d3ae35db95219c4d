//! The one error shape of the unified API: `{"error": {"code", "message", "field"}}` with a
//! stable `code`, a human `message` and the offending `field` (a query parameter, a body field
//! or a header) when there is one.
//!
//! | status | codes |
//! |---|---|
//! | 400 | `bad_cursor`, `unknown_field`, `unknown_parameter`, `unsupported_operator`, `invalid_value`, `limit_out_of_range`, `duplicate_parameter`, `malformed_json`, `invalid_body`, `read_only_field`, `invalid_query`, `missing_portal`, `conflicting_portal`, `filter_not_supported`, `too_many_filters`, `hubspot_rejected`, `invalid_request` |
//! | 401 | `unauthorized` |
//! | 403 | `portal_forbidden` |
//! | 404 | `not_found`, `not_in_hubspot` |
//! | 405 | `method_not_allowed` |
//! | 413 | `payload_too_large` |
//! | 422 | `sync_failed` (with `record`), `unmappable` |
//! | 429 | `rate_limited` (with `Retry-After`) |
//! | 500 | `internal` (details only in the server log) |
//! | 502 | `hubspot_error`, `hubspot_forbidden` |
//! | 503 | `portal_not_connected`, `portal_needs_reauth`, `hubspot_unavailable` |

use std::time::Duration;

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use hubsync_hubspot::{ApiError as HubspotApiError, BudgetView};
use hubsync_mapping::{FilterError, MappingError};
use hubsync_store::StoreError;
use serde_json::{Value, json};

use super::ratelimit;

/// An error answer of the unified API.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// A stable, machine-readable code (`bad_cursor`, `unknown_field`, …).
    pub code: &'static str,
    /// What went wrong, for people.
    pub message: String,
    /// The query parameter, body field or header at fault.
    pub field: Option<String>,
    /// What a few errors carry besides (boxed: errors travel in `Result`s everywhere).
    pub details: Option<Box<Details>>,
}

/// What a few errors carry besides the code, message and field.
#[derive(Debug, Clone, Default)]
pub struct Details {
    /// For a rate-limited remote read: when to retry (`Retry-After`).
    pub retry_after: Option<Duration>,
    /// For a rate-limited remote read: the budget HubSpot's answer left (`RateLimit-*`).
    pub budget: Option<BudgetView>,
    /// An extra top-level member of the body (`record` when a write failed to sync).
    pub extra: Option<(&'static str, Value)>,
}

impl ApiError {
    /// An error with a status, code and message.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            field: None,
            details: None,
        }
    }

    /// The details, created on first use.
    pub fn details_mut(&mut self) -> &mut Details {
        self.details.get_or_insert_with(Box::default)
    }

    /// Adds `Retry-After`.
    pub fn retry_after(mut self, after: Duration) -> ApiError {
        self.details_mut().retry_after = Some(after);
        self
    }

    /// Names the offending field.
    pub fn field(mut self, field: impl Into<String>) -> ApiError {
        self.field = Some(field.into());
        self
    }

    /// 400 with a code.
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// 404 `not_found`.
    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// 500 `internal`: logs the cause, tells the caller nothing more.
    pub fn internal(cause: &dyn std::fmt::Display) -> ApiError {
        tracing::error!(error = %cause, "unified api internal error");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error; see the server log",
        )
    }

    /// The JSON body.
    pub fn body(&self) -> Value {
        let mut body = json!({
            "error": {
                "code": self.code,
                "message": self.message,
                "field": self.field,
            }
        });
        let extra = self.details.as_ref().and_then(|d| d.extra.as_ref());
        if let (Some((key, value)), Some(object)) = (extra, body.as_object_mut()) {
            object.insert((*key).to_owned(), value.clone());
        }
        body
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, Json(self.body())).into_response();
        let headers = response.headers_mut();
        let details = self.details.as_deref().cloned().unwrap_or_default();
        if let Some(budget) = &details.budget {
            ratelimit::insert(headers, budget);
        }
        if let Some(after) = details.retry_after {
            // Whole seconds, rounded up, at least one: a zero would invite an immediate retry.
            let secs = after.as_millis().div_ceil(1000).max(1);
            if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
                headers.insert(header::RETRY_AFTER, v);
            }
        }
        if self.status == StatusCode::UNAUTHORIZED {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"hubsync\""),
            );
        }
        response
    }
}

impl From<FilterError> for ApiError {
    fn from(e: FilterError) -> ApiError {
        let (code, name) = match &e {
            FilterError::UnknownField { name } => ("unknown_field", name),
            FilterError::UnsupportedOperator { name, .. } => ("unsupported_operator", name),
            FilterError::InvalidValue { name, .. } => ("invalid_value", name),
            FilterError::NotSearchable { name, .. } => ("filter_not_supported", name),
            FilterError::TooManyFilters { name, .. } => ("too_many_filters", name),
        };
        let name = name.clone();
        ApiError::bad_request(code, e.to_string()).field(name)
    }
}

impl From<MappingError> for ApiError {
    fn from(e: MappingError) -> ApiError {
        match e {
            MappingError::InvalidValue { field, reason } => ApiError::bad_request(
                "invalid_value",
                format!("invalid value for `{field}`: {reason}"),
            )
            .field(field),
            other if other.is_record_error() => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "unmappable",
                other.to_string(),
            ),
            other => ApiError::internal(&other),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        match e {
            StoreError::UnknownField { field, .. } => {
                ApiError::bad_request("unknown_field", format!("unknown field `{field}`"))
                    .field(field)
            }
            StoreError::InvalidValue { field, reason, .. } => ApiError::bad_request(
                "invalid_value",
                format!("invalid value for `{field}`: {reason}"),
            )
            .field(field),
            StoreError::InvalidFilter { field, reason } => ApiError::bad_request(
                "invalid_value",
                format!("invalid filter on `{field}`: {reason}"),
            )
            .field(field),
            other => ApiError::internal(&other),
        }
    }
}

impl From<HubspotApiError> for ApiError {
    /// HubSpot's answer to a remote read, passed on: 429s as 429 with the budget and
    /// `Retry-After` (never retried here), a missing record as 404, HubSpot's own validation
    /// message as 400, and an unreachable HubSpot as 502/503.
    fn from(e: HubspotApiError) -> ApiError {
        let message = e.to_string();
        match e {
            HubspotApiError::RateLimited {
                policy,
                retry_after,
                budget,
            } => {
                let after = retry_after.unwrap_or(Duration::from_millis(budget.reset_in_ms));
                let mut err = ApiError::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "rate_limited",
                    format!("HubSpot rate limit reached ({policy})"),
                )
                .retry_after(after);
                err.details_mut().budget = Some(*budget);
                err
            }
            HubspotApiError::DailyLimit { resets_at } => {
                let left = resets_at - time::OffsetDateTime::now_utc();
                ApiError::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "rate_limited",
                    "HubSpot daily limit reached",
                )
                .retry_after(left.try_into().unwrap_or(Duration::from_secs(1)))
            }
            HubspotApiError::NotFound(_) => ApiError::not_found("no such record in HubSpot"),
            HubspotApiError::Validation(body) => ApiError::bad_request(
                "hubspot_rejected",
                format!("HubSpot rejected the request: {}", body.message),
            ),
            HubspotApiError::InvalidRequest(reason) => {
                ApiError::bad_request("invalid_request", reason)
            }
            HubspotApiError::NeedsReauth { .. } => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "portal_needs_reauth",
                "the portal's HubSpot authorisation must be renewed",
            ),
            HubspotApiError::CircuitOpen { retry_in, .. } => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "hubspot_unavailable",
                "HubSpot is failing for this portal; reads through to it are paused",
            )
            .retry_after(retry_in),
            HubspotApiError::UnknownPortal(portal) => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "portal_not_connected",
                format!("portal {portal} is not connected to HubSpot"),
            ),
            HubspotApiError::Forbidden(_) => ApiError::new(
                StatusCode::BAD_GATEWAY,
                "hubspot_forbidden",
                "HubSpot refused the portal's token for this read (missing scope)",
            ),
            _ => {
                tracing::warn!(error = %message, "remote read failed");
                ApiError::new(
                    StatusCode::BAD_GATEWAY,
                    "hubspot_error",
                    format!("HubSpot read failed: {message}"),
                )
            }
        }
    }
}
