//! What the server needs to know that the engine does not: the URL HubSpot calls, the body and
//! time limits, and the webhook signing settings.

use std::time::Duration;

use hubsync_hubspot::webhooks::{DEFAULT_MAX_AGE, SignatureVerifier};
use secrecy::SecretString;

use crate::unified::UnifiedConfig;

/// The default request body limit (a HubSpot delivery of 100 events is far below it).
pub const DEFAULT_MAX_BODY_BYTES: usize = 2 * 1024 * 1024;

/// The default per-request time limit.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// The server's settings.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// The server's external base URL as HubSpot calls it (`https://sync.example.com`, or
    /// `https://example.com/hubsync` behind a proxy that strips `/hubsync`). The webhook
    /// signature covers the full URL, so the request's path and query are appended to this,
    /// never the address the socket happens to listen on. A trailing `/` is ignored.
    pub public_url: String,
    /// Request bodies larger than this are refused with 413.
    pub max_body_bytes: usize,
    /// A request that takes longer than this is answered 408.
    pub request_timeout: Duration,
    /// HubSpot webhook verification; `None` leaves `POST /webhooks/hubspot` unmounted (404).
    pub webhook: Option<WebhookConfig>,
    /// The unified REST API's tunables.
    pub unified: UnifiedConfig,
}

impl ServerConfig {
    /// Settings with the default limits.
    pub fn new(public_url: impl Into<String>, webhook: Option<WebhookConfig>) -> Self {
        ServerConfig {
            public_url: public_url.into(),
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            webhook,
            unified: UnifiedConfig::default(),
        }
    }

    /// Checks the settings, naming the one that is wrong.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let url = self.public_url.trim();
        let uri: http::Uri = url
            .parse()
            .map_err(|_| ConfigError::PublicUrl(url.to_owned()))?;
        let scheme_ok = matches!(uri.scheme_str(), Some("http" | "https"));
        if !scheme_ok || uri.authority().is_none() || uri.query().is_some() {
            return Err(ConfigError::PublicUrl(url.to_owned()));
        }
        if self.max_body_bytes == 0 {
            return Err(ConfigError::MaxBodyBytes);
        }
        if self.request_timeout.is_zero() {
            return Err(ConfigError::RequestTimeout);
        }
        Ok(())
    }

    /// The base URL without a trailing slash, the prefix of every signed URI.
    pub(crate) fn public_base(&self) -> String {
        self.public_url.trim().trim_end_matches('/').to_owned()
    }
}

/// How webhook deliveries are authenticated.
#[derive(Debug, Clone)]
pub struct WebhookConfig {
    /// The HubSpot app's client secret, the signing key of every delivery.
    pub client_secret: SecretString,
    /// Deliveries whose `X-HubSpot-Request-Timestamp` is further off than this are refused
    /// (replay protection); HubSpot's rule is 5 minutes.
    pub max_age: Duration,
    /// Also accept the v1/v2 schemes (no timestamp, so no replay protection) when a request
    /// carries no v3 signature.
    pub accept_legacy: bool,
}

impl WebhookConfig {
    /// v3 only, with HubSpot's 5-minute window.
    pub fn new(client_secret: SecretString) -> Self {
        WebhookConfig {
            client_secret,
            max_age: DEFAULT_MAX_AGE,
            accept_legacy: false,
        }
    }

    pub(crate) fn verifier(&self) -> SignatureVerifier {
        SignatureVerifier::new(self.client_secret.clone())
            .max_age(self.max_age)
            .allow_legacy(self.accept_legacy)
    }
}

/// A setting that cannot work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// `public_url` is not an absolute http(s) URL without a query.
    #[error("public_url `{0}` must be an absolute http:// or https:// URL without a query")]
    PublicUrl(String),
    /// `max_body_bytes` is zero.
    #[error("max_body_bytes must be greater than zero")]
    MaxBodyBytes,
    /// `request_timeout` is zero.
    #[error("request_timeout must be greater than zero")]
    RequestTimeout,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_url_must_be_absolute_http() {
        let ok = ServerConfig::new("https://sync.example.com/hubsync/", None);
        assert_eq!(ok.validate(), Ok(()));
        assert_eq!(ok.public_base(), "https://sync.example.com/hubsync");
        for bad in [
            "/webhooks",
            "ftp://x",
            "sync.example.com",
            "https://x/?a=1",
            "",
        ] {
            assert!(
                ServerConfig::new(bad, None).validate().is_err(),
                "{bad} accepted"
            );
        }
    }

    #[test]
    fn debug_output_redacts_the_secret() {
        let config = ServerConfig::new(
            "https://x",
            Some(WebhookConfig::new(SecretString::from("s3cr3t-value"))),
        );
        assert!(!format!("{config:?}").contains("s3cr3t-value"));
    }
}
