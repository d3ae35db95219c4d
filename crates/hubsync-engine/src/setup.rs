//! Portal set-up: turning a stored portal into a registered HubSpot client, creating hubsync's
//! own HubSpot properties, and persisting refreshed OAuth tokens.
//!
//! Stored credentials ([`PortalAuth`]) are JSON, one of:
//! - `{"kind": "private_app", "token": "pat-…"}`
//! - `{"kind": "oauth", "access_token": "…", "refresh_token": "…", "expires_at": <epoch s>}`

use std::sync::Arc;
use std::time::Duration;

use hubsync_core::{ObjectType, PortalId};
use hubsync_hubspot::auth::{BoxFuture, TokenStoreError};
use hubsync_hubspot::{
    LimitsConfig, OAuthApp, OAuthTokens, PortalClient, PortalCredentials, TokenStore,
};
use hubsync_store::{Portal, PortalAuth, Store};
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;

use crate::{Engine, EngineError};

/// Reads a portal's stored credentials. `app` supplies the OAuth client for refreshes.
pub fn credentials(
    portal: &Portal,
    app: Option<&OAuthApp>,
) -> Result<PortalCredentials, EngineError> {
    let bad = |reason: &str| EngineError::Credentials {
        portal: portal.portal_id,
        reason: reason.to_owned(),
    };
    let auth = &portal.auth.0;
    match auth.get("kind").and_then(|k| k.as_str()) {
        Some("private_app") => {
            let token = auth
                .get("token")
                .and_then(|t| t.as_str())
                .ok_or_else(|| bad("private_app without token"))?;
            Ok(PortalCredentials::PrivateApp(SecretString::from(
                token.to_owned(),
            )))
        }
        Some("oauth") => {
            let app = app
                .cloned()
                .ok_or_else(|| bad("OAuth portal but no OAuth client configured"))?;
            let field = |name: &str| {
                auth.get(name)
                    .and_then(|v| v.as_str())
                    .map(|s| SecretString::from(s.to_owned()))
                    .ok_or_else(|| bad(&format!("oauth credentials without {name}")))
            };
            let expires_at = auth
                .get("expires_at")
                .and_then(|v| v.as_i64())
                .and_then(|s| time::OffsetDateTime::from_unix_timestamp(s).ok())
                .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
            Ok(PortalCredentials::OAuth {
                app,
                tokens: OAuthTokens {
                    access_token: field("access_token")?,
                    refresh_token: field("refresh_token")?,
                    expires_at,
                },
            })
        }
        _ => Err(bad("unknown credentials kind")),
    }
}

/// The stored form of OAuth tokens.
pub fn oauth_auth(tokens: &OAuthTokens) -> PortalAuth {
    PortalAuth(json!({
        "kind": "oauth",
        "access_token": tokens.access_token.expose_secret(),
        "refresh_token": tokens.refresh_token.expose_secret(),
        "expires_at": tokens.expires_at.unix_timestamp(),
    }))
}

/// The per-portal limits from its stored config (`burst_tier`, `daily_limit`).
pub fn limits(portal: &Portal) -> LimitsConfig {
    let mut limits = LimitsConfig::default();
    if let Some(tier) = portal.config.get("burst_tier").and_then(|v| v.as_u64()) {
        limits.general_max = tier as u32;
    }
    if let Some(window_ms) = portal
        .config
        .get("burst_window_ms")
        .and_then(|v| v.as_u64())
    {
        limits.general_window = Duration::from_millis(window_ms);
    }
    if let Some(daily) = portal.config.get("daily_limit").and_then(|v| v.as_u64()) {
        limits.daily_limit = Some(daily);
    }
    limits
}

/// Registers a portal with the HubSpot client and makes sure hubsync's own properties
/// (`hubsync_id`, `hubsync_origin`) exist on every synced object type.
pub async fn connect_portal(
    engine: &Engine,
    portal: &Portal,
    app: Option<&OAuthApp>,
) -> Result<PortalClient, EngineError> {
    let creds = credentials(portal, app)?;
    let client = engine
        .hubspot
        .portal_with_limits(portal.portal_id, creds, &limits(portal));
    for ty in ObjectType::ALL {
        client.ensure_hubsync_properties(ty).await?;
    }
    tracing::info!(portal = %portal.portal_id, "portal connected");
    Ok(client)
}

/// Persists refreshed OAuth tokens in the store.
pub struct StoreTokens(pub Arc<dyn Store>);

impl TokenStore for StoreTokens {
    fn save<'a>(
        &'a self,
        portal: PortalId,
        tokens: &'a OAuthTokens,
    ) -> BoxFuture<'a, Result<(), TokenStoreError>> {
        Box::pin(async move {
            self.0.set_portal_auth(portal, &oauth_auth(tokens)).await?;
            Ok(())
        })
    }
}
