//! HubSpot's error bodies, built exactly as the digest quotes them, and the crate's own error
//! type for start-up and admin failures.

use axum::http::{HeaderValue, StatusCode, header::HeaderName};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::model::ValueError;

/// Failures of the emulator itself (not HubSpot answers).
#[derive(Debug, thiserror::Error)]
pub enum EmulatorError {
    /// The listener could not be used.
    #[error("listener error: {0}")]
    Io(#[from] std::io::Error),
    /// A portal with this id already exists.
    #[error("portal {0} already exists")]
    PortalExists(u64),
    /// No portal with this id.
    #[error("portal {0} not found")]
    PortalNotFound(u64),
    /// No record with this id.
    #[error("{kind} {id} not found")]
    ObjectNotFound {
        /// Object kind.
        kind: &'static str,
        /// Record id.
        id: u64,
    },
    /// The request was rejected the way HubSpot would reject it.
    #[error("rejected with {status}: {message}")]
    Rejected {
        /// HTTP status.
        status: u16,
        /// HubSpot's message.
        message: String,
    },
    /// The portal has no OAuth client.
    #[error("portal {0} has no oauth client")]
    NoOAuthClient(u64),
    /// A configuration value is invalid.
    #[error("invalid configuration: {0}")]
    InvalidConfig(String),
}

/// A HubSpot error response: status, JSON body and extra headers.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// JSON body.
    pub body: Value,
    /// Extra response headers.
    pub headers: Vec<(HeaderName, String)>,
}

/// A fresh correlation id.
pub fn correlation_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

impl ApiError {
    /// A body with `status`, `message`, `correlationId` and `category`.
    pub fn new(status: StatusCode, category: &str, message: impl Into<String>) -> Self {
        Self {
            status,
            body: json!({
                "status": "error",
                "message": message.into(),
                "correlationId": correlation_id(),
                "category": category,
            }),
            headers: Vec::new(),
        }
    }

    /// 400 `VALIDATION_ERROR`.
    pub fn validation(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "VALIDATION_ERROR", message)
    }

    /// 400 `VALIDATION_ERROR` with an `errors` array.
    pub fn validation_errors(message: impl Into<String>, errors: Vec<Value>) -> Self {
        let mut e = Self::validation(message);
        e.body["errors"] = Value::Array(errors);
        e
    }

    /// 400 for rejected property values, in HubSpot's "Property values were not valid" form.
    pub fn property_values(portal_id: u64, errs: &[ValueError]) -> Self {
        let inner: Vec<Value> = errs
            .iter()
            .map(|e| {
                json!({
                    "isValid": false,
                    "message": e.message,
                    "error": e.code,
                    "name": e.name,
                    "localizedErrorMessage": e.message,
                    "portalId": portal_id,
                })
            })
            .collect();
        let errors = errs
            .iter()
            .map(|e| {
                json!({
                    "message": e.message,
                    "code": e.code,
                    "context": {"propertyName": [e.name]},
                })
            })
            .collect();
        let inner = serde_json::to_string(&inner).unwrap_or_default();
        Self::validation_errors(format!("Property values were not valid: {inner}"), errors)
    }

    /// 404 for a record id (note HubSpot's two spaces).
    pub fn object_not_found(id: &str) -> Self {
        let mut e = Self::new(
            StatusCode::NOT_FOUND,
            "OBJECT_NOT_FOUND",
            "Object not found.  objectId are usually numeric.",
        );
        e.body["context"] = json!({"id": [id]});
        e
    }

    /// 404 for a path the emulator does not serve.
    pub fn route_not_found(method: &str, path: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "OBJECT_NOT_FOUND",
            format!("Unable to route {method} request for {path}"),
        )
    }

    /// 409 on a duplicate unique value.
    pub fn conflict(kind_label: &str, existing: u64) -> Self {
        Self::new(
            StatusCode::CONFLICT,
            "CONFLICT",
            format!("{kind_label} already exists. Existing ID: {existing}"),
        )
    }

    /// 401 for a missing or unknown token.
    pub fn unauthenticated() -> Self {
        let mut e = Self::new(
            StatusCode::UNAUTHORIZED,
            "INVALID_AUTHENTICATION",
            "Authentication credentials not found. This API supports OAuth 2.0 authentication and you can find more details at https://developers.hubspot.com/docs/methods/auth/oauth-overview",
        );
        e.headers.push((
            HeaderName::from_static("x-hubspot-auth-failure"),
            "401 Unauthorized".into(),
        ));
        e
    }

    /// 401 for an expired OAuth token.
    pub fn expired(seconds_ago: i64) -> Self {
        let mut e = Self::new(
            StatusCode::UNAUTHORIZED,
            "EXPIRED_AUTHENTICATION",
            format!("The OAuth token used to make this call expired {seconds_ago} second(s) ago."),
        );
        e.headers.push((
            HeaderName::from_static("x-hubspot-auth-failure"),
            "401 Unauthorized".into(),
        ));
        e
    }

    /// 413 for an oversized body.
    pub fn too_large(limit: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "VALIDATION_ERROR",
            format!("Request body exceeds the maximum of {limit} bytes"),
        )
    }

    /// 414 for an oversized URI.
    pub fn uri_too_long() -> Self {
        Self::new(StatusCode::URI_TOO_LONG, "VALIDATION_ERROR", "URI Too Long")
    }

    /// 429 naming the policy (`TEN_SECONDLY_ROLLING`, `DAILY`, `SECONDLY`).
    pub fn rate_limited(policy: &str, group: String, retry_after_secs: Option<u64>) -> Self {
        let word = match policy {
            "TEN_SECONDLY_ROLLING" => "ten_secondly_rolling",
            "DAILY" => "daily",
            _ => "secondly",
        };
        let mut body = json!({
            "status": "error",
            "message": format!("You have reached your {word} limit."),
            "errorType": "RATE_LIMIT",
            "correlationId": correlation_id(),
            "policyName": policy,
            "groupName": group,
        });
        if policy != "TEN_SECONDLY_ROLLING" {
            body["requestId"] = Value::String(correlation_id());
        }
        let mut headers = Vec::new();
        if let Some(s) = retry_after_secs {
            headers.push((HeaderName::from_static("retry-after"), s.to_string()));
        }
        Self {
            status: StatusCode::TOO_MANY_REQUESTS,
            body,
            headers,
        }
    }

    /// An injected server error.
    pub fn injected_5xx(status: StatusCode) -> Self {
        Self::new(status, "INTERNAL_ERROR", "internal error")
    }

    /// 400 for a body that is not valid JSON or not the expected shape.
    pub fn bad_json(err: &serde_json::Error) -> Self {
        Self::validation(format!(
            "Invalid input JSON on line {}, column {}: {}",
            err.line(),
            err.column(),
            err
        ))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut resp = (self.status, axum::Json(self.body)).into_response();
        for (k, v) in self.headers {
            if let Ok(v) = HeaderValue::from_str(&v) {
                resp.headers_mut().insert(k, v);
            }
        }
        resp
    }
}
