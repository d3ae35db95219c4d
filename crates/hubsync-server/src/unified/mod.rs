//! The unified CRM REST API: contacts, companies and deals of each connected portal in the
//! flat unified model, for apps that do not share hubsync's database.
//!
//! | route | does |
//! |---|---|
//! | `GET /unified/crm/{type}` | a page of records (cursor pagination, filters in query parameters) |
//! | `GET /unified/crm/{type}/{id}` | one record |
//! | `POST /unified/crm/{type}` | creates a record (an app write: captured into the outbox) |
//! | `PATCH /unified/crm/{type}/{id}` | changes a record (`null` clears a field) |
//! | `DELETE /unified/crm/{type}/{id}` | deletes a record (soft delete, archived in HubSpot) |
//! | `GET /openapi.json` | the OpenAPI 3.1 document of all of it |
//!
//! `{type}` is `contacts`, `companies` or `deals`. Reads come from the local mirror unless
//! `?source=remote` reads through to HubSpot (filters become a search's `filterGroups`, by the
//! same declarative rules the mirror's SQL comes from). Writes answer with the record and its
//! sync status; `?wait=synced` holds the answer until HubSpot accepted the write or refused it.
//!
//! Every request names a portal and carries an API key scoped to it ([`auth`]); every answer
//! carries the portal's `RateLimit-*` headers ([`ratelimit`]); every error has one shape
//! ([`error`]).
//!
//! # Layout
//! - [`auth`]: API keys (hashed), portal scoping, the gate middleware.
//! - [`resources`]: the record handlers on the mirror, and writes with `?wait=synced`.
//! - [`remote`]: read-through to HubSpot.
//! - [`records`]: the unified record shape and the sync status.
//! - [`cursor`], [`ratelimit`], [`error`]: cursors, headers, the error shape.
//! - [`openapi`]: the OpenAPI document, generated from the mappings' field declarations.

pub mod auth;
pub mod cursor;
pub mod error;
pub mod openapi;
pub mod ratelimit;
pub mod records;
pub mod remote;
pub mod resources;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use hubsync_core::ObjectType;
use hubsync_engine::Engine;

pub use auth::{KeyError, create_api_key, hash_key};
pub use error::ApiError;

/// Tunables of the unified API.
#[derive(Debug, Clone)]
pub struct UnifiedConfig {
    /// The longest a `?wait=synced` write holds its answer before answering 202 with the
    /// record still pending. Keep it below the server's request timeout (10 s by default),
    /// which would otherwise cut the wait short with a 408.
    pub wait_timeout: Duration,
    /// How often a waiting write looks at the sync state.
    pub wait_poll: Duration,
    /// How long an API key or portal lookup is cached (a revoked key works for at most this
    /// long). Zero disables the cache.
    pub auth_cache_ttl: Duration,
    /// The longest a remote read waits for a slot in the portal's HubSpot budget before it is
    /// answered 429 instead.
    pub remote_max_wait: Duration,
}

impl Default for UnifiedConfig {
    fn default() -> Self {
        UnifiedConfig {
            wait_timeout: Duration::from_secs(8),
            wait_poll: Duration::from_millis(50),
            auth_cache_ttl: Duration::from_secs(5),
            remote_max_wait: Duration::from_secs(2),
        }
    }
}

/// What every handler shares.
pub struct Shared {
    /// The store, mappings and HubSpot client.
    pub engine: Engine,
    /// Tunables.
    pub config: UnifiedConfig,
    auth: auth::AuthCache,
    openapi: bytes::Bytes,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// The unified API's routes with default settings (state applied; merge into the server's
/// router).
pub fn router(engine: Engine) -> Router {
    router_with(engine, UnifiedConfig::default())
}

/// The unified API's routes with these settings.
pub fn router_with(engine: Engine, config: UnifiedConfig) -> Router {
    let document = openapi::document(&engine.mappings);
    let openapi = bytes::Bytes::from(serde_json::to_vec(&document).unwrap_or_default());
    let shared = Arc::new(Shared {
        engine,
        config,
        auth: auth::AuthCache::default(),
        openapi,
    });
    let resources = Router::new()
        .route(
            "/unified/crm/{resource}",
            get(resources::list)
                .post(resources::create)
                .fallback(method_not_allowed),
        )
        .route(
            "/unified/crm/{resource}/{id}",
            get(resources::get_one)
                .patch(resources::update)
                .delete(resources::remove)
                .fallback(method_not_allowed),
        )
        .route_layer(axum::middleware::from_fn_with_state(
            Arc::clone(&shared),
            auth::gate,
        ));
    Router::new()
        .route("/openapi.json", get(serve_openapi))
        .merge(resources)
        .with_state(shared)
}

async fn serve_openapi(State(shared): State<Arc<Shared>>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        shared.openapi.clone(),
    )
        .into_response()
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this method is not allowed on this resource",
    )
}

/// The object type a path names (plural names only).
pub(crate) fn object_type(resource: &str) -> Result<ObjectType, ApiError> {
    ObjectType::ALL
        .into_iter()
        .find(|t| t.plural() == resource)
        .ok_or_else(|| {
            ApiError::not_found(format!(
                "no resource `{resource}`: expected contacts, companies or deals"
            ))
        })
}

/// A request's query parameters, in order.
pub(crate) fn query_pairs(uri: &Uri) -> Result<Vec<(String, String)>, ApiError> {
    if uri.query().is_none() {
        return Ok(Vec::new());
    }
    Query::<Vec<(String, String)>>::try_from_uri(uri)
        .map(|q| q.0)
        .map_err(|e| ApiError::bad_request("invalid_query", format!("malformed query: {e}")))
}
