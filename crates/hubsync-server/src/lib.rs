//! hubsync's HTTP server: the HubSpot webhook receiver, the status page, `/metrics`,
//! `/healthz` and `/readyz`, and the unified CRM REST API (built in [`unified`], merged in here).
//!
//! # Routes
//! | route | what |
//! |---|---|
//! | `POST /webhooks/hubspot` | verify the signature over the raw bytes → store the delivery in the inbox (one transaction) → 200 ([`webhook`]) |
//! | `GET /` | the status page: per portal status, rate budget with a live chart, queue depths, reconcile, echoes, recent conflicts |
//! | `GET /status.json` | the same data as JSON ([`status::StatusReport`]) |
//! | `GET /metrics` | Prometheus text: the process recorder plus store gauges read at scrape time |
//! | `GET /healthz` | the process is up |
//! | `GET /readyz` | the database answers |
//! | `/unified/crm/…`, `GET /openapi.json` | the unified CRM REST API ([`unified`]) |
//!
//! Every route runs behind the same layers: sensitive headers hidden from traces, a request
//! span (`method`, `path`, and `portal` once known), panics turned into 500s, a time limit
//! (408) and a body limit (413).
//!
//! # Use
//! ```no_run
//! # async fn demo(engine: hubsync_engine::Engine) -> std::io::Result<()> {
//! use hubsync_server::{ServerConfig, WebhookConfig};
//! let webhook = WebhookConfig::new(secrecy::SecretString::from("client-secret"));
//! let config = ServerConfig::new("https://sync.example.com", Some(webhook));
//! let app = hubsync_server::router(engine, config, None);
//! let listener = tokio::net::TcpListener::bind("0.0.0.0:8080").await?;
//! hubsync_server::run(listener, app, hubsync_server::shutdown_signal()).await
//! # }
//! ```

mod config;
mod observe;
mod page;
pub mod status;
pub mod unified;
pub mod webhook;

use std::future::Future;
use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, Request, StatusCode, header};
use axum::routing::{get, post};
use axum::serve::ListenerExt as _;
use hubsync_engine::Engine;
use metrics_exporter_prometheus::PrometheusHandle;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::sensitive_headers::SetSensitiveRequestHeadersLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

pub use config::{
    ConfigError, DEFAULT_MAX_BODY_BYTES, DEFAULT_REQUEST_TIMEOUT, ServerConfig, WebhookConfig,
};
pub use webhook::WEBHOOK_PATH;

/// What every handler of this module shares.
pub(crate) struct AppState {
    engine: Engine,
    receiver: Option<webhook::Receiver>,
    metrics: Option<PrometheusHandle>,
    portals: webhook::PortalDirectory,
    budgets: status::BudgetHistory,
}

/// The server's routes and layers. `metrics` is the handle of the Prometheus recorder the
/// binary installed (`PrometheusBuilder::new().install_recorder()`); without one, `/metrics`
/// serves only the store gauges.
pub fn router(engine: Engine, config: ServerConfig, metrics: Option<PrometheusHandle>) -> Router {
    let receiver = config.webhook.as_ref().map(|w| webhook::Receiver {
        verifier: w.verifier(),
        public_base: config.public_base(),
    });
    let mounted_webhook = receiver.is_some();
    let state = Arc::new(AppState {
        engine: engine.clone(),
        receiver,
        metrics,
        portals: webhook::PortalDirectory::new(),
        budgets: status::BudgetHistory::new(),
    });

    let mut routes = Router::new()
        .route("/", get(status::status_page))
        .route("/status.json", get(status::status_json))
        .route("/metrics", get(observe::metrics))
        .route("/healthz", get(observe::healthz))
        .route("/readyz", get(observe::readyz));
    if mounted_webhook {
        routes = routes.route(WEBHOOK_PATH, post(webhook::receive));
    }
    let app = routes
        .with_state(state)
        .merge(unified::router_with(engine, config.unified.clone()));
    with_layers(app, &config)
}

/// The layers every route runs behind, innermost last.
fn with_layers(routes: Router, config: &ServerConfig) -> Router {
    let sensitive: Arc<[HeaderName]> = Arc::new([
        header::AUTHORIZATION,
        header::COOKIE,
        HeaderName::from_static("x-api-key"),
        HeaderName::from_static(hubsync_hubspot::webhooks::SIGNATURE_V3_HEADER),
        HeaderName::from_static(hubsync_hubspot::webhooks::SIGNATURE_HEADER),
    ]);
    let trace = TraceLayer::new_for_http().make_span_with(|request: &Request<_>| {
        // The path only: a query string could carry anything.
        tracing::info_span!(
            "http",
            method = %request.method(),
            path = %request.uri().path(),
            portal = tracing::field::Empty,
        )
    });
    routes
        .layer(RequestBodyLimitLayer::new(config.max_body_bytes))
        .layer(DefaultBodyLimit::max(config.max_body_bytes))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            config.request_timeout,
        ))
        .layer(CatchPanicLayer::new())
        .layer(trace)
        .layer(SetSensitiveRequestHeadersLayer::from_shared(sensitive))
}

/// Serves `router` on `listener` until `shutdown` completes, then stops accepting, lets the
/// requests in flight finish (each bounded by the request timeout) and returns.
pub async fn run(
    listener: tokio::net::TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, "http server listening");
    }
    // Answers are small and written at once: send them without waiting for the peer's ACK.
    let listener = listener.tap_io(|tcp| {
        if let Err(error) = tcp.set_nodelay(true) {
            tracing::debug!(%error, "could not set TCP_NODELAY");
        }
    });
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await?;
    tracing::info!("http server stopped");
    Ok(())
}

/// Completes on Ctrl-C or SIGTERM: the usual `shutdown` for [`run`].
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
    tracing::info!("shutdown requested");
}
