//! Worker loops: for every active portal, an outbound loop, an inbound loop and a reconcile
//! loop, plus one app-webhook delivery loop; started and stopped as portals come and go, and
//! all stopped by one shutdown signal.
//!
//! A loop calls its worker's single step until the step reports no work, then waits for a
//! wake-up (a PostgreSQL NOTIFY for the outbox) or its idle poll. A portal whose credentials
//! are refused or whose daily budget is spent is parked with a status the operator can see,
//! instead of being retried in a loop.

use std::collections::BTreeMap;
use std::time::Duration;

use hubsync_core::{ObjectType, PortalId};
use hubsync_hubspot::OAuthApp;
use hubsync_store::PortalStatus;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::{Engine, EngineError, inbound, notify, outbound, reconcile, setup};

/// Runs every portal's workers until `shutdown` turns true. In-flight steps finish (each is a
/// transaction); nothing claimed is lost, because unacknowledged claims return when their lease
/// runs out or are released.
pub async fn run(engine: Engine, oauth: Option<OAuthApp>, mut shutdown: watch::Receiver<bool>) -> Result<(), EngineError> {
    let mut portals: BTreeMap<PortalId, watch::Sender<bool>> = BTreeMap::new();
    let mut tasks = JoinSet::new();
    {
        let engine = engine.clone();
        let shutdown = shutdown.clone();
        tasks.spawn(async move { notify_loop(engine, shutdown).await });
    }
    loop {
        // Start workers for new active portals; stop those removed or parked.
        let stored = engine.store.list_portals().await?;
        for portal in &stored {
            let active = portal.status == PortalStatus::Active;
            if active && !portals.contains_key(&portal.portal_id) {
                match setup::connect_portal(&engine, portal, oauth.as_ref()).await {
                    Ok(_) => {
                        let (stop_tx, stop_rx) = watch::channel(false);
                        portals.insert(portal.portal_id, stop_tx);
                        spawn_portal(&mut tasks, &engine, portal.portal_id, stop_rx);
                    }
                    Err(error) => park(&engine, portal.portal_id, &error).await,
                }
            }
        }
        portals.retain(|id, stop| {
            let keep = stored.iter().any(|p| p.portal_id == *id && p.status == PortalStatus::Active);
            if !keep {
                let _ = stop.send(true);
                engine.hubspot.remove(*id);
            }
            keep
        });
        tokio::select! {
            _ = shutdown.changed() => break,
            _ = tokio::time::sleep(Duration::from_secs(2)) => {}
        }
    }
    for stop in portals.values() {
        let _ = stop.send(true);
    }
    while tasks.join_next().await.is_some() {}
    Ok(())
}

fn spawn_portal(tasks: &mut JoinSet<()>, engine: &Engine, portal: PortalId, stop: watch::Receiver<bool>) {
    let (e, s) = (engine.clone(), stop.clone());
    tasks.spawn(async move { outbound_loop(e, portal, s).await });
    let (e, s) = (engine.clone(), stop.clone());
    tasks.spawn(async move { inbound_loop(e, portal, s).await });
    let (e, s) = (engine.clone(), stop);
    tasks.spawn(async move { reconcile_loop(e, portal, s).await });
}

/// Marks a portal as needing attention and says why.
async fn park(engine: &Engine, portal: PortalId, error: &EngineError) {
    let status = match error {
        EngineError::Api(e) if matches!(e, hubsync_hubspot::ApiError::NeedsReauth { .. }) => PortalStatus::NeedsReauth,
        EngineError::Credentials { .. } => PortalStatus::NeedsReauth,
        _ => PortalStatus::Parked,
    };
    tracing::error!(portal = %portal, %error, status = status.as_str(), "portal parked");
    if let Err(e) = engine.store.set_portal_status(portal, status, Some(&error.to_string())).await {
        tracing::warn!(portal = %portal, error = %e, "could not record the portal's status");
    }
}

/// Waits `d` or until stopped; `true` if stopped.
async fn pause(stop: &mut watch::Receiver<bool>, d: Duration) -> bool {
    if *stop.borrow() {
        return true;
    }
    tokio::select! {
        _ = stop.changed() => true,
        _ = tokio::time::sleep(d) => *stop.borrow(),
    }
}

/// Handles a failed step: parks a blocked portal (and stops its loop), backs off otherwise.
async fn on_error(engine: &Engine, portal: PortalId, error: EngineError, failures: &mut u32, stop: &mut watch::Receiver<bool>) -> bool {
    if error.is_portal_blocked() {
        park(engine, portal, &error).await;
        return true;
    }
    *failures += 1;
    let delay = hubsync_core::retry::backoff(*failures, Duration::from_millis(200), Duration::from_secs(30), rand::random());
    tracing::warn!(portal = %portal, %error, retry_in_ms = delay.as_millis() as u64, "worker step failed");
    pause(stop, delay).await
}

async fn outbound_loop(engine: Engine, portal: PortalId, mut stop: watch::Receiver<bool>) {
    let mut failures = 0;
    // Local creates wait for the initial import, so they link to existing records by key
    // instead of duplicating them.
    loop {
        let mut all_done = true;
        for ty in ObjectType::ALL {
            match reconcile::import_done(&engine, portal, ty).await {
                Ok(done) => all_done &= done,
                Err(_) => all_done = false,
            }
        }
        if all_done || pause(&mut stop, Duration::from_millis(200)).await {
            break;
        }
    }
    let mut lingered = false;
    while !*stop.borrow() {
        if !lingered && pause(&mut stop, engine.settings.outbound_linger).await {
            return;
        }
        lingered = true;
        match outbound::push_once(&engine, portal).await {
            Ok(step) if step.is_idle() => {
                failures = 0;
                lingered = false;
                tokio::select! {
                    _ = stop.changed() => {}
                    _ = engine.store.wait_for_outbox(engine.settings.idle_poll) => {}
                }
            }
            Ok(_) => failures = 0,
            Err(error) => {
                if on_error(&engine, portal, error, &mut failures, &mut stop).await {
                    return;
                }
            }
        }
    }
}

async fn inbound_loop(engine: Engine, portal: PortalId, mut stop: watch::Receiver<bool>) {
    let mut failures = 0;
    while !*stop.borrow() {
        match inbound::apply_once(&engine, portal).await {
            Ok(step) if step.is_idle() => {
                failures = 0;
                if pause(&mut stop, engine.settings.idle_poll).await {
                    return;
                }
            }
            Ok(_) => failures = 0,
            Err(error) => {
                if on_error(&engine, portal, error, &mut failures, &mut stop).await {
                    return;
                }
            }
        }
    }
}

async fn reconcile_loop(engine: Engine, portal: PortalId, mut stop: watch::Receiver<bool>) {
    let mut failures = 0;
    // Initial import first, type by type, page by page.
    for ty in ObjectType::ALL {
        loop {
            if *stop.borrow() {
                return;
            }
            match reconcile::import_step(&engine, portal, ty).await {
                Ok(step) if step.done => break,
                Ok(_) => failures = 0,
                Err(error) => {
                    if on_error(&engine, portal, error, &mut failures, &mut stop).await {
                        return;
                    }
                }
            }
        }
    }
    tracing::info!(portal = %portal, "initial import complete");
    loop {
        if pause(&mut stop, engine.settings.reconcile_interval).await {
            return;
        }
        for ty in ObjectType::ALL {
            match reconcile::incremental_pass(&engine, portal, ty).await {
                Ok(report) => tracing::info!(portal = %portal, object_type = %ty, ?report, "incremental reconcile pass"),
                Err(error) => {
                    if on_error(&engine, portal, error, &mut failures, &mut stop).await {
                        return;
                    }
                }
            }
        }
    }
}

async fn notify_loop(engine: Engine, mut stop: watch::Receiver<bool>) {
    let http = reqwest::Client::new();
    while !*stop.borrow() {
        match notify::deliver_once(&engine, &http, 100).await {
            Ok(0) | Err(_) => {
                if pause(&mut stop, Duration::from_millis(500)).await {
                    return;
                }
            }
            Ok(_) => {}
        }
    }
}
