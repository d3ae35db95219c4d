//! The rate-aware HubSpot CRM client of hubsync, usable on its own.
//!
//! # Layout
//! - [`HubspotClient`] (`client`): one shared HTTP client and the registry of portals;
//!   OAuth grants ([`HubspotClient::exchange_code`]).
//! - [`PortalClient`] (`portal`, `endpoints`): one portal's handle. Every call goes through
//!   the same loop: fail fast when the portal needs re-authorisation, its circuit is open or
//!   its daily budget is parked; take a slot on the general or search lane by [`Priority`];
//!   send; let the response's `X-HubSpot-RateLimit-*` (or IETF `RateLimit-*`) headers correct
//!   the limiter; retry 429s by policy and 5xx/timeouts with capped backoff; map everything
//!   else to a typed [`ApiError`].
//! - `limiter`, `lanes`, `breaker`: the pure rolling-window/daily/circuit arithmetic and the
//!   priority-ordered lanes built on it.
//! - [`auth`]: private-app tokens, OAuth refresh (before expiry and on 401), the
//!   [`TokenStore`] that persists new tokens, and the `NeedsReauth` state.
//! - [`model`]: request and response types of the CRM v3/v4 endpoints.
//! - [`webhooks`]: webhook payloads, the delivery parser and signature verification (pure).
//!
//! Secrets are `secrecy::SecretString` everywhere and never logged.
//!
//! # Example
//!
//! ```no_run
//! # async fn demo() -> Result<(), hubsync_hubspot::ApiError> {
//! use std::time::Duration;
//! use hubsync_core::{ObjectType, PortalId};
//! use hubsync_hubspot::model::{UpsertInput, HUBSYNC_ORIGIN_PROPERTY};
//! use hubsync_hubspot::{ApiError, ClientConfig, HubspotClient, PortalCredentials, Priority};
//! use secrecy::SecretString;
//!
//! let hubspot = HubspotClient::new(ClientConfig::default())?;
//! let portal = hubspot.portal(PortalId(62515), PortalCredentials::PrivateApp(SecretString::from("pat-na1-...")));
//! portal.ensure_hubsync_properties(ObjectType::Contacts).await?;
//!
//! // Outbound writes: idempotent creates by hubsync's own unique property.
//! let outbound = portal.with_priority(Priority::Outbound);
//! let input = UpsertInput::by_hubsync_id("local-42", [
//!     ("email".to_owned(), "ann@example.com".to_owned()),
//!     (HUBSYNC_ORIGIN_PROPERTY.to_owned(), "hubsync".to_owned()),
//! ].into());
//! let batch = outbound.batch_upsert(ObjectType::Contacts, &[input]).await?;
//! for failed in &batch.errors {
//!     println!("dead-letter {:?}: {}", failed.ids(), failed);
//! }
//!
//! // A read-through on behalf of a user: never queue long, pass 429s on.
//! match portal.interactive(Duration::from_millis(500)).list_page(ObjectType::Contacts, &Default::default()).await {
//!     Err(ApiError::RateLimited { retry_after, budget, .. }) => println!("429, retry in {retry_after:?}, {budget:?}"),
//!     other => { other?; }
//! }
//! # Ok(()) }
//! ```

pub mod auth;
mod breaker;
mod client;
pub mod config;
mod endpoints;
pub mod error;
mod lanes;
mod limiter;
pub mod model;
mod portal;
mod stats;
pub mod webhooks;

pub use auth::{AuthStatus, OAuthApp, OAuthTokens, PortalCredentials, TokenGrant, TokenStore};
pub use breaker::CircuitState;
pub use client::{HubspotClient, PortalStatus};
pub use config::{BreakerConfig, ClientConfig, LimitsConfig, RetryConfig};
pub use endpoints::{MAX_IN_VALUES, PropertySetup};
pub use error::{ApiError, HubspotError, RateLimitPolicy};
pub use lanes::LaneKind;
pub use limiter::Priority;
pub use portal::{BudgetView, CallOptions, PortalClient};
pub use stats::StatsSnapshot;
