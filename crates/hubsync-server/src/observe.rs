//! `/metrics`, `/healthz` and `/readyz`.
//!
//! `/metrics` is the Prometheus text of the process's `metrics` recorder (installed by the
//! binary; its handle is passed in), followed by gauges read from the store at scrape time, so
//! they are right even for work done by another process:
//!
//! | metric | labels | meaning |
//! |---|---|---|
//! | `hubsync_queue_depth` | `portal`, `queue` (`outbox`, `inbox`, `dead_letters`) | items waiting |
//! | `hubsync_conflicts_recorded` | `portal` | conflicts settled and recorded, all time |
//! | `hubsync_echoes_dropped_recorded` | `portal`, `path` | echoes dropped, all time (durable) |
//! | `hubsync_portal_status` | `portal`, `status` | 1 for the portal's current status |
//! | `hubsync_rate_budget_in_use` / `_limit` | `portal` | requests used / allowed in the window |
//!
//! Recorded by the other crates through the recorder: `hubsync_hubspot_requests_total`
//! (`portal`, `lane`, `status`), `hubsync_hubspot_429_total` (`portal`, `lane`, `policy`),
//! `hubsync_echoes_dropped_total` (`path`); by this crate: `hubsync_webhook_requests_total`
//! (`outcome`), `hubsync_webhook_events_total` (`outcome`: `stored`, `duplicate`,
//! `unknown_portal`) and `hubsync_webhook_ack_seconds`.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use hubsync_engine::counters;
use hubsync_store::StoreError;

use crate::AppState;

/// How long `/readyz` waits for the database.
const READY_TIMEOUT: Duration = Duration::from_secs(2);

/// `GET /healthz`: the process is up and serving.
pub(crate) async fn healthz() -> &'static str {
    "ok\n"
}

/// `GET /readyz`: the database answers.
pub(crate) async fn readyz(State(state): State<Arc<AppState>>) -> Response {
    match tokio::time::timeout(READY_TIMEOUT, state.engine.store.list_portals()).await {
        Ok(Ok(_)) => (StatusCode::OK, "ready\n").into_response(),
        Ok(Err(error)) => {
            tracing::warn!(%error, "not ready: the database failed");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "not ready: the database failed\n",
            )
                .into_response()
        }
        Err(_) => {
            tracing::warn!("not ready: the database did not answer in time");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "not ready: the database did not answer in time\n",
            )
                .into_response()
        }
    }
}

/// `GET /metrics`.
pub(crate) async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    let mut text = match &state.metrics {
        Some(handle) => {
            handle.run_upkeep();
            handle.render()
        }
        None => String::new(),
    };
    if let Err(error) = store_gauges(&state, &mut text).await {
        // The recorder's part is still worth serving; the gauges are simply absent.
        tracing::warn!(%error, "metrics: store gauges unavailable");
    }
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

async fn store_gauges(state: &AppState, out: &mut String) -> Result<(), StoreError> {
    let engine = &state.engine;
    let portals = engine.store.list_portals().await?;
    let mut depth = String::new();
    let mut conflicts = String::new();
    let mut echoes = String::new();
    let mut status = String::new();
    let mut in_use = String::new();
    let mut limit = String::new();
    for portal in &portals {
        let id = portal.portal_id;
        let q = engine.store.queue_depths(id).await?;
        for (queue, n) in [
            ("outbox", q.outbox),
            ("inbox", q.inbox),
            ("dead_letters", q.dead_letters),
        ] {
            let _ = writeln!(
                depth,
                "hubsync_queue_depth{{portal=\"{id}\",queue=\"{queue}\"}} {n}"
            );
        }
        let _ = writeln!(
            conflicts,
            "hubsync_conflicts_recorded{{portal=\"{id}\"}} {}",
            q.conflicts
        );
        let counts = engine.store.counters(id).await?;
        for (path, name) in [
            ("change_source", counters::ECHO_CHANGE_SOURCE),
            ("origin", counters::ECHO_ORIGIN),
            ("fingerprint", counters::ECHO_FINGERPRINT),
        ] {
            let n = counts.get(name).copied().unwrap_or(0);
            let _ = writeln!(
                echoes,
                "hubsync_echoes_dropped_recorded{{portal=\"{id}\",path=\"{path}\"}} {n}"
            );
        }
        let _ = writeln!(
            status,
            "hubsync_portal_status{{portal=\"{id}\",status=\"{}\"}} 1",
            portal.status.as_str()
        );
        if let Some(budget) = engine.hubspot.budget(id) {
            let used = budget.limit.saturating_sub(budget.remaining);
            let _ = writeln!(
                in_use,
                "hubsync_rate_budget_in_use{{portal=\"{id}\"}} {used}"
            );
            let _ = writeln!(
                limit,
                "hubsync_rate_budget_limit{{portal=\"{id}\"}} {}",
                budget.limit
            );
        }
    }
    family(
        out,
        "hubsync_queue_depth",
        "Items waiting per portal and queue, read from the store at scrape time.",
        &depth,
    );
    family(
        out,
        "hubsync_conflicts_recorded",
        "Conflicts settled by policy and recorded, per portal, all time.",
        &conflicts,
    );
    family(
        out,
        "hubsync_echoes_dropped_recorded",
        "Echoes of hubsync's own writes dropped, per portal and path, all time.",
        &echoes,
    );
    family(
        out,
        "hubsync_portal_status",
        "1 for each portal's current sync status.",
        &status,
    );
    family(
        out,
        "hubsync_rate_budget_in_use",
        "Requests used in the portal's current rate window.",
        &in_use,
    );
    family(
        out,
        "hubsync_rate_budget_limit",
        "Requests allowed per rate window.",
        &limit,
    );
    Ok(())
}

fn family(out: &mut String, name: &str, help: &str, samples: &str) {
    if samples.is_empty() {
        return;
    }
    if !out.is_empty() && !out.ends_with('\n') {
        out.push('\n');
    }
    let _ = write!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{samples}");
}
