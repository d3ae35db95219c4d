//! Credentials: private-app tokens and OAuth 2 tokens with refresh, the [`TokenStore`] that
//! persists refreshed tokens, and the per-portal auth state (`NeedsReauth`).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use hubsync_core::PortalId;
use hubsync_core::retry::backoff;
use parking_lot::Mutex;
use secrecy::{ExposeSecret, SecretString};
use time::OffsetDateTime;
use tokio::sync::watch;

use crate::error::{ApiError, HubspotError};
use crate::model::RawTokenResponse;

/// A boxed, sendable future (what [`TokenStore`] returns).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// An error from a [`TokenStore`].
pub type TokenStoreError = Box<dyn std::error::Error + Send + Sync>;

/// How a portal authenticates.
#[derive(Clone)]
pub enum PortalCredentials {
    /// A private-app access token (`pat-na1-...`).
    PrivateApp(SecretString),
    /// OAuth 2: the app's client credentials and the portal's current tokens.
    OAuth {
        /// The app.
        app: OAuthApp,
        /// The tokens.
        tokens: OAuthTokens,
    },
}

impl fmt::Debug for PortalCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PortalCredentials::PrivateApp(_) => f.write_str("PrivateApp([redacted])"),
            PortalCredentials::OAuth { app, tokens } => f
                .debug_struct("OAuth")
                .field("app", app)
                .field("tokens", tokens)
                .finish(),
        }
    }
}

/// An OAuth app's client credentials.
#[derive(Clone)]
pub struct OAuthApp {
    /// The client id (not secret).
    pub client_id: String,
    /// The client secret.
    pub client_secret: SecretString,
}

impl fmt::Debug for OAuthApp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OAuthApp")
            .field("client_id", &self.client_id)
            .field("client_secret", &"[redacted]")
            .finish()
    }
}

/// A portal's OAuth tokens.
#[derive(Clone)]
pub struct OAuthTokens {
    /// The access token (30 minutes on HubSpot).
    pub access_token: SecretString,
    /// The long-lived refresh token.
    pub refresh_token: SecretString,
    /// When the access token expires.
    pub expires_at: OffsetDateTime,
}

impl fmt::Debug for OAuthTokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OAuthTokens")
            .field("access_token", &"[redacted]")
            .field("refresh_token", &"[redacted]")
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// What the token endpoint granted.
#[derive(Debug, Clone)]
pub struct TokenGrant {
    /// The tokens.
    pub tokens: OAuthTokens,
    /// The access token's lifetime as granted.
    pub expires_in: Duration,
    /// The portal the tokens are for, when the endpoint says.
    pub hub_id: Option<PortalId>,
    /// Granted scopes, when the endpoint says.
    pub scopes: Vec<String>,
}

/// Persists refreshed OAuth tokens so a restart needs no new login. The engine implements it
/// over its store. A failed save is logged and the new tokens are still used in memory.
pub trait TokenStore: Send + Sync {
    /// Saves the portal's new tokens.
    fn save<'a>(
        &'a self,
        portal: PortalId,
        tokens: &'a OAuthTokens,
    ) -> BoxFuture<'a, Result<(), TokenStoreError>>;
}

/// Whether a portal's credentials work.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthStatus {
    /// Calls are authenticated.
    Ok,
    /// The token was rejected or the refresh failed; calls fail fast with
    /// [`ApiError::NeedsReauth`] until new credentials are registered.
    NeedsReauth {
        /// What HubSpot said.
        reason: String,
    },
}

pub(crate) const TOKEN_PATH: &str = "oauth/v1/token";

/// Sends a form to the token endpoint.
pub(crate) async fn request_token(
    http: &reqwest::Client,
    url: reqwest::Url,
    form: &[(&str, &str)],
    previous_refresh: Option<&SecretString>,
) -> Result<TokenGrant, ApiError> {
    let response =
        http.post(url)
            .form(form)
            .send()
            .await
            .map_err(|source| ApiError::Transport {
                attempts: 1,
                source,
            })?;
    let status = response.status().as_u16();
    let body = response
        .bytes()
        .await
        .map_err(|source| ApiError::Transport {
            attempts: 1,
            source,
        })?;
    metrics::counter!("hubsync_hubspot_requests_total", "lane" => "oauth", "status" => status.to_string())
        .increment(1);
    if !(200..300).contains(&status) {
        let error = Box::new(HubspotError::from_body(&body));
        return Err(if status >= 500 {
            ApiError::Server {
                status,
                attempts: 1,
                error: Some(error),
            }
        } else {
            ApiError::OAuth { status, error }
        });
    }
    let raw: RawTokenResponse =
        serde_json::from_slice(&body).map_err(|source| ApiError::Decode {
            what: "oauth token response",
            source,
        })?;
    // A lifetime beyond a year is garbage; cap it so the clock arithmetic cannot overflow.
    let expires_in = Duration::from_secs(raw.expires_in.min(365 * 24 * 60 * 60));
    let refresh_token = match (raw.refresh_token, previous_refresh) {
        (Some(t), _) => SecretString::from(t),
        (None, Some(old)) => old.clone(),
        (None, None) => SecretString::from(String::new()),
    };
    Ok(TokenGrant {
        tokens: OAuthTokens {
            access_token: SecretString::from(raw.access_token),
            refresh_token,
            expires_at: OffsetDateTime::now_utc() + expires_in,
        },
        expires_in,
        hub_id: raw.hub_id.filter(|h| *h > 0).map(PortalId),
        scopes: raw.scopes,
    })
}

/// A bearer token and the generation it belongs to (bumped on every refresh, so concurrent
/// callers that saw the same expired token refresh once).
pub(crate) struct Bearer {
    pub token: SecretString,
    pub generation: u64,
    pub is_oauth: bool,
}

struct AuthInner {
    credentials: PortalCredentials,
    refresh_at: Option<OffsetDateTime>,
    generation: u64,
    needs_reauth: Option<String>,
}

/// Per-portal auth state.
pub(crate) struct PortalAuth {
    portal: PortalId,
    inner: Mutex<AuthInner>,
    refresh_lock: tokio::sync::Mutex<()>,
    status: watch::Sender<AuthStatus>,
    refresh_margin: Duration,
    refreshes: AtomicU64,
}

/// When to refresh a token expiring at `expires_at`: `margin` before, but never earlier than
/// half-way through its `lifetime` (for tokens handed in from outside, the lifetime left).
fn refresh_at(expires_at: OffsetDateTime, lifetime: Duration, margin: Duration) -> OffsetDateTime {
    expires_at - margin.min(lifetime / 2)
}

/// The lifetime a token has left.
fn lifetime_left(expires_at: OffsetDateTime) -> Duration {
    Duration::try_from(expires_at - OffsetDateTime::now_utc()).unwrap_or(Duration::ZERO)
}

impl PortalAuth {
    pub fn new(portal: PortalId, credentials: PortalCredentials, refresh_margin: Duration) -> Self {
        let refresh = match &credentials {
            PortalCredentials::OAuth { tokens, .. } => Some(refresh_at(
                tokens.expires_at,
                lifetime_left(tokens.expires_at),
                refresh_margin,
            )),
            PortalCredentials::PrivateApp(_) => None,
        };
        PortalAuth {
            portal,
            inner: Mutex::new(AuthInner {
                credentials,
                refresh_at: refresh,
                generation: 0,
                needs_reauth: None,
            }),
            refresh_lock: tokio::sync::Mutex::new(()),
            status: watch::Sender::new(AuthStatus::Ok),
            refresh_margin,
            refreshes: AtomicU64::new(0),
        }
    }

    /// Successful refreshes so far.
    pub fn refreshes(&self) -> u64 {
        self.refreshes.load(Ordering::Relaxed)
    }

    /// Replaces the credentials (after a re-authorisation) and clears `NeedsReauth`.
    pub fn replace(&self, credentials: PortalCredentials) {
        let mut inner = self.inner.lock();
        inner.refresh_at = match &credentials {
            PortalCredentials::OAuth { tokens, .. } => Some(refresh_at(
                tokens.expires_at,
                lifetime_left(tokens.expires_at),
                self.refresh_margin,
            )),
            PortalCredentials::PrivateApp(_) => None,
        };
        inner.credentials = credentials;
        inner.generation += 1;
        inner.needs_reauth = None;
        drop(inner);
        self.status.send_replace(AuthStatus::Ok);
    }

    /// Bumped whenever the token changes (refresh or new credentials).
    pub fn generation(&self) -> u64 {
        self.inner.lock().generation
    }

    pub fn status(&self) -> AuthStatus {
        self.status.borrow().clone()
    }

    pub fn subscribe(&self) -> watch::Receiver<AuthStatus> {
        self.status.subscribe()
    }

    fn reauth_error(&self, reason: &str) -> ApiError {
        ApiError::NeedsReauth {
            portal: self.portal,
            reason: reason.to_owned(),
        }
    }

    /// Marks the portal as needing re-authorisation because the credentials of `generation`
    /// were rejected; logs once. Credentials registered since then are not affected (a
    /// request that was in flight with the old token must not condemn the new one): it gets
    /// the transient [`ApiError::TokenRejected`] instead.
    pub fn mark_needs_reauth(&self, generation: u64, reason: String) -> ApiError {
        let mut inner = self.inner.lock();
        if inner.generation != generation {
            return ApiError::TokenRejected {
                portal: self.portal,
                reason: format!("{reason} (credentials since replaced)"),
            };
        }
        if inner.needs_reauth.is_none() {
            tracing::error!(portal = %self.portal, reason = %reason, "hubspot credentials rejected; portal needs re-authorisation");
            inner.needs_reauth = Some(reason.clone());
            drop(inner);
            self.status.send_replace(AuthStatus::NeedsReauth {
                reason: reason.clone(),
            });
        }
        self.reauth_error(&reason)
    }

    /// The token to send now, refreshing first when the OAuth token is due.
    pub async fn bearer(&self, shared: &crate::client::Shared) -> Result<Bearer, ApiError> {
        let (bearer, due) = {
            let inner = self.inner.lock();
            if let Some(reason) = &inner.needs_reauth {
                return Err(self.reauth_error(reason));
            }
            match &inner.credentials {
                PortalCredentials::PrivateApp(token) => (
                    Bearer {
                        token: token.clone(),
                        generation: inner.generation,
                        is_oauth: false,
                    },
                    false,
                ),
                PortalCredentials::OAuth { tokens, .. } => {
                    let due = inner
                        .refresh_at
                        .is_some_and(|at| OffsetDateTime::now_utc() >= at);
                    (
                        Bearer {
                            token: tokens.access_token.clone(),
                            generation: inner.generation,
                            is_oauth: true,
                        },
                        due,
                    )
                }
            }
        };
        if !due {
            return Ok(bearer);
        }
        match self.refresh(shared, bearer.generation).await {
            Ok(fresh) => Ok(fresh),
            // A transient failure inside the refresh margin: the old token still works.
            Err(error) if !matches!(error, ApiError::NeedsReauth { .. }) && !self.expired() => {
                tracing::warn!(portal = %self.portal, error = %error, "oauth refresh failed; using the current token until it expires");
                Ok(bearer)
            }
            Err(error) => Err(error),
        }
    }

    fn expired(&self) -> bool {
        match &self.inner.lock().credentials {
            PortalCredentials::OAuth { tokens, .. } => {
                OffsetDateTime::now_utc() >= tokens.expires_at
            }
            PortalCredentials::PrivateApp(_) => false,
        }
    }

    /// Refreshes the OAuth token unless another caller already did since `seen_generation`.
    pub async fn refresh(
        &self,
        shared: &crate::client::Shared,
        seen_generation: u64,
    ) -> Result<Bearer, ApiError> {
        let _single_flight = self.refresh_lock.lock().await;
        let (app, refresh_token) = {
            let inner = self.inner.lock();
            if let Some(reason) = &inner.needs_reauth {
                return Err(self.reauth_error(reason));
            }
            match &inner.credentials {
                PortalCredentials::OAuth { app, tokens } => {
                    if inner.generation != seen_generation {
                        return Ok(Bearer {
                            token: tokens.access_token.clone(),
                            generation: inner.generation,
                            is_oauth: true,
                        });
                    }
                    (app.clone(), tokens.refresh_token.clone())
                }
                PortalCredentials::PrivateApp(token) => {
                    return Ok(Bearer {
                        token: token.clone(),
                        generation: inner.generation,
                        is_oauth: false,
                    });
                }
            }
        };
        let form = [
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token.expose_secret()),
            ("client_id", app.client_id.as_str()),
            ("client_secret", app.client_secret.expose_secret()),
        ];
        let url = shared.url(TOKEN_PATH, &[])?;
        let retry = &shared.config.retry;
        let mut attempt = 0u32;
        let grant = loop {
            match request_token(&shared.http, url.clone(), &form, Some(&refresh_token)).await {
                Ok(grant) => break grant,
                // HubSpot refused the grant itself (invalid_grant, bad client): a human must
                // re-authorise.
                Err(ApiError::OAuth {
                    status: 400 | 401 | 403,
                    error,
                }) => {
                    let reason = match (&error.status, &error.error) {
                        (Some(status), _) => format!("{status}: {}", error.message),
                        (None, Some(code)) => format!(
                            "{code}: {}",
                            error.error_description.as_deref().unwrap_or_default()
                        ),
                        (None, None) => error.message.clone(),
                    };
                    return Err(self.mark_needs_reauth(
                        seen_generation,
                        format!("oauth refresh failed ({reason})"),
                    ));
                }
                // A 429, 5xx or network failure of the token endpoint is transient.
                Err(error) if attempt + 1 < retry.max_attempts => {
                    tracing::warn!(portal = %self.portal, error = %error, "oauth refresh failed; retrying");
                    let wait = backoff(
                        attempt,
                        retry.backoff_base,
                        retry.backoff_cap,
                        rand::random::<f64>(),
                    );
                    attempt += 1;
                    tokio::time::sleep(wait).await;
                }
                Err(error) => return Err(error),
            }
        };
        let generation = {
            let mut inner = self.inner.lock();
            inner.refresh_at = Some(refresh_at(
                grant.tokens.expires_at,
                grant.expires_in,
                self.refresh_margin,
            ));
            inner.credentials = PortalCredentials::OAuth {
                app,
                tokens: grant.tokens.clone(),
            };
            inner.generation += 1;
            inner.generation
        };
        self.refreshes.fetch_add(1, Ordering::Relaxed);
        tracing::info!(portal = %self.portal, expires_in_s = grant.expires_in.as_secs(), "oauth access token refreshed");
        if let Some(store) = &shared.token_store {
            persist(store, self.portal, &grant.tokens).await;
        }
        Ok(Bearer {
            token: grant.tokens.access_token,
            generation,
            is_oauth: true,
        })
    }
}

async fn persist(store: &Arc<dyn TokenStore>, portal: PortalId, tokens: &OAuthTokens) {
    if let Err(error) = store.save(portal, tokens).await {
        tracing::error!(portal = %portal, error = %error, "could not persist refreshed oauth tokens; a restart will need them again");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_redacts_every_secret() {
        let creds = PortalCredentials::OAuth {
            app: OAuthApp {
                client_id: "cid".into(),
                client_secret: SecretString::from("client-secret-value"),
            },
            tokens: OAuthTokens {
                access_token: SecretString::from("access-token-value"),
                refresh_token: SecretString::from("refresh-token-value"),
                expires_at: OffsetDateTime::UNIX_EPOCH,
            },
        };
        let shown = format!(
            "{creds:?} {:?}",
            PortalCredentials::PrivateApp(SecretString::from("pat-na1-secret"))
        );
        for secret in [
            "client-secret-value",
            "access-token-value",
            "refresh-token-value",
            "pat-na1-secret",
        ] {
            assert!(!shown.contains(secret), "{shown}");
        }
        assert!(shown.contains("cid"));
    }

    #[test]
    fn refresh_margin_never_exceeds_half_the_lifetime() {
        let exp = OffsetDateTime::UNIX_EPOCH + Duration::from_secs(1800);
        let margin = Duration::from_secs(300);
        assert_eq!(
            refresh_at(exp, Duration::from_secs(1800), margin),
            exp - margin
        );
        assert_eq!(
            refresh_at(exp, Duration::from_secs(4), margin),
            exp - Duration::from_secs(2)
        );
    }
}
