//! Worker loops: for every portal this process holds a lease on, an outbound loop, an inbound
//! loop and a reconcile loop, plus one app-webhook delivery loop; started and stopped as leases
//! and portals come and go, and all stopped by one shutdown signal.
//!
//! # Ownership
//! Several identical processes may share one database. A supervisor in each process, in rounds
//! started every third of the lease period ([`EngineSettings::lease_period`](crate::EngineSettings)):
//! 1. renews the lease of every portal it runs, and stops a portal's workers at once when a
//!    renewal fails (the lease moved on, or could not be renewed for so long that it may have);
//! 2. renews its membership and counts the live processes ([`Ownership::heartbeat`]);
//! 3. stops the workers of portals removed or no longer active (parked, needing re-authorisation);
//! 4. gives away portals beyond its fair share (`ceil(active portals / live processes)`), newest
//!    first, after their in-flight steps finish;
//! 5. takes free or expired portal leases up to its fair share (more often while below it).
//!
//! A dead process's leases expire after one lease period and the others notice within a round,
//! so its portals resume within 2 × the period, from committed state: claimed queue items return
//! when their claim leases run out. Every database write a portal's workers make carries the
//! lease's fence, so a process that lost a lease while paused has its writes refused; HubSpot
//! cannot check a fence, so the outbound worker also stops writing there once its [`Tenure`]
//! has not been renewed for two thirds of the period. With SQLite (one process) the same path
//! runs: the process wins every lease, at once even after a crash (see [`crate::lease`]).
//!
//! # Loops
//! A loop calls its worker's single step until the step reports no work, then waits for a
//! wake-up (a PostgreSQL NOTIFY for the outbox) or its idle poll. Each portal has its own loops,
//! budget and queue claims, so a portal with a huge backlog never starves another. A portal whose
//! credentials are refused or whose daily budget is spent is parked with a status the operator
//! can see, instead of being retried in a loop; setting it active again (`hubsync portal auth`)
//! resumes it.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use hubsync_core::{ObjectType, PortalId};
use hubsync_hubspot::OAuthApp;
use hubsync_store::{Portal, PortalStatus, StoreError};
use rand::seq::SliceRandom;
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;

use crate::lease::{Lease, Ownership, Tenure, fair_share};
use crate::{Engine, EngineError, inbound, notify, outbound, reconcile, setup};

/// The longest a graceful shutdown waits for in-flight steps before abandoning them (their
/// claims return to the queues when the claim leases run out).
const SHUTDOWN_GRACE: Duration = Duration::from_secs(20);

/// Runs the workers of the portals this process owns until `shutdown` turns true. In-flight
/// steps finish (each is a transaction) and the leases are given up, so the other processes take
/// the portals over at once; nothing claimed is lost, because unacknowledged claims return when
/// their lease runs out or are released.
pub async fn run(
    engine: Engine,
    oauth: Option<OAuthApp>,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), EngineError> {
    let notifier = {
        let engine = engine.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move { notify_loop(engine, shutdown).await })
    };
    let mut supervisor = Supervisor::new(engine, oauth);
    tracing::info!(
        owner = supervisor.ownership.owner(),
        lease_ms = supervisor.ownership.ttl().as_millis() as u64,
        "worker supervisor started"
    );
    // Rounds start at a fixed rate, so a slow round does not delay the next renewals.
    let mut next = Instant::now();
    'run: loop {
        supervisor.tick().await;
        // Below its fair share (a process just joined), it looks for free portals more often.
        let step = if supervisor.hungry {
            supervisor.period() / 3
        } else {
            supervisor.period()
        };
        next = (next + step).max(Instant::now());
        loop {
            tokio::select! {
                _ = shutdown.changed() => break 'run,
                _ = tokio::time::sleep_until(next) => break,
                Some(done) = supervisor.retiring.join_next(), if !supervisor.retiring.is_empty() => {
                    supervisor.retired(done).await;
                }
            }
        }
    }
    supervisor.shutdown().await;
    let _ = notifier.await;
    Ok(())
}

/// Lease statements in flight at once (renewals, acquisitions).
const IN_FLIGHT: usize = 8;

/// One portal run by this process.
struct Held {
    lease: Lease,
    /// What the workers check before writing to HubSpot; moved forward by each renewal.
    tenure: Tenure,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
    /// When the tenure began.
    since: Instant,
}

/// Decides which portals this process runs, and runs them.
struct Supervisor {
    engine: Engine,
    oauth: Option<OAuthApp>,
    ownership: Ownership,
    held: BTreeMap<PortalId, Held>,
    /// Portals whose workers are finishing before their lease is given up; yields the lease.
    retiring: JoinSet<Lease>,
    retiring_ids: BTreeSet<PortalId>,
    /// Whether the last round ended below the fair share.
    hungry: bool,
}

impl Supervisor {
    fn new(engine: Engine, oauth: Option<OAuthApp>) -> Self {
        let ownership = Ownership::new(
            Arc::clone(&engine.store),
            &engine.settings.worker_id,
            engine.settings.lease_period,
        );
        Supervisor {
            engine,
            oauth,
            ownership,
            held: BTreeMap::new(),
            retiring: JoinSet::new(),
            retiring_ids: BTreeSet::new(),
            hungry: false,
        }
    }

    /// The supervisor's cadence: a third of the lease period.
    fn period(&self) -> Duration {
        self.ownership.ttl() / 3
    }

    /// How long a renewal keeps the workers writing to HubSpot: two thirds of the lease period,
    /// so that they stop well before another process could take the lease over.
    fn validity(&self) -> Duration {
        self.ownership.ttl() - self.period()
    }

    /// One round: renewals, heartbeat, stops, rebalancing, acquisitions.
    async fn tick(&mut self) {
        self.renew_all().await;
        let live = match self.ownership.heartbeat().await {
            Ok(live) => Some(live),
            Err(error) => {
                tracing::warn!(%error, "membership heartbeat failed");
                None
            }
        };
        // The portal list comes from the main pool, which busy workers may hold: a slow answer
        // must not delay the next round's renewals, so the round goes on without it.
        let portals = match tokio::time::timeout(
            self.period() / 2,
            self.engine.store.list_portals(),
        )
        .await
        {
            Ok(Ok(portals)) => portals,
            Ok(Err(error)) => {
                tracing::warn!(%error, "cannot list the portals");
                return;
            }
            Err(_) => {
                tracing::warn!(
                    "listing the portals is slow (database busy); skipping this round's rebalancing"
                );
                return;
            }
        };
        let active: BTreeMap<PortalId, Portal> = portals
            .into_iter()
            .filter(|p| p.status == PortalStatus::Active)
            .map(|p| (p.portal_id, p))
            .collect();

        let gone: Vec<PortalId> = self
            .held
            .keys()
            .filter(|id| !active.contains_key(id))
            .copied()
            .collect();
        for portal in gone {
            tracing::info!(portal = %portal, "portal removed or no longer active: stopping its workers");
            self.retire(portal);
        }
        // Without a process count, hold what we have and take nothing new.
        let Some(live) = live else { return };
        let share = fair_share(active.len(), live);
        while self.held.len() > share {
            let Some(newest) = self
                .held
                .iter()
                .max_by_key(|(_, h)| h.since)
                .map(|(id, _)| *id)
            else {
                break;
            };
            tracing::info!(portal = %newest, share, live, "over the fair share: handing the portal over");
            self.retire(newest);
        }
        if self.held.len() < share {
            let mut free: Vec<Portal> = active
                .values()
                .filter(|p| {
                    !self.held.contains_key(&p.portal_id)
                        && !self.retiring_ids.contains(&p.portal_id)
                })
                .cloned()
                .collect();
            free.shuffle(&mut rand::rng());
            // Half a period at most, so that the next renewals start about on time.
            let stop_at = Instant::now() + self.period() / 2;
            while self.held.len() < share && !free.is_empty() && Instant::now() < stop_at {
                // Never more attempts at once than portals still missing, so never over the share.
                let batch: Vec<Portal> = free
                    .drain(..(share - self.held.len()).min(free.len()).min(IN_FLIGHT))
                    .collect();
                let results: Vec<(Portal, Result<Option<Lease>, StoreError>)> =
                    futures::stream::iter(batch)
                        .map(|portal| acquire(&self.ownership, portal))
                        .buffer_unordered(IN_FLIGHT)
                        .collect()
                        .await;
                for (portal, result) in results {
                    match result {
                        Ok(Some(lease)) => self.start(lease, portal),
                        Ok(None) => {}
                        Err(error) => {
                            tracing::warn!(portal = %portal.portal_id, %error, "cannot take the portal's lease")
                        }
                    }
                }
            }
        }
        self.hungry = self.held.len() < share;
        metrics::gauge!("hubsync_portals_held").set(self.held.len() as f64);
        metrics::gauge!("hubsync_live_processes").set(live as f64);
        tracing::debug!(
            held = self.held.len(),
            share,
            live,
            active = active.len(),
            "ownership round"
        );
    }

    /// Renews every held lease; stops at once the workers of a portal whose lease is lost, or
    /// could not be renewed before the workers' tenure ran out.
    async fn renew_all(&mut self) {
        let leases: Vec<Lease> = self.held.values().map(|h| h.lease).collect();
        let results: Vec<(Lease, std::time::Instant, Result<bool, StoreError>)> =
            futures::stream::iter(leases)
                .map(|lease| renew(&self.ownership, lease))
                .buffer_unordered(IN_FLIGHT)
                .collect()
                .await;
        let validity = self.validity();
        let mut lost = Vec::new();
        for (lease, started, result) in results {
            let portal = lease.portal;
            let Some(held) = self.held.get(&portal) else {
                continue;
            };
            match result {
                Ok(true) => held.tenure.extend(started, validity),
                Ok(false) => {
                    tracing::warn!(portal = %portal, fence = held.lease.fence.0, "lease lost: stopping the portal's workers");
                    lost.push(portal);
                }
                Err(error) if !held.tenure.is_current() => {
                    tracing::warn!(portal = %portal, %error, "lease not renewed in time: stopping the portal's workers");
                    lost.push(portal);
                }
                Err(error) => {
                    tracing::warn!(portal = %portal, %error, "lease renewal failed; retrying")
                }
            }
        }
        for portal in lost {
            if let Some(held) = self.held.remove(&portal) {
                held.tenure.revoke();
                held.task.abort();
                self.engine.hubspot.remove(portal);
            }
        }
    }

    /// Starts a portal's workers under `lease`.
    fn start(&mut self, lease: Lease, portal: Portal) {
        let (stop, stop_rx) = watch::channel(false);
        let engine = self.engine.clone();
        let oauth = self.oauth.clone();
        let tenure = Tenure::new(lease.fence, self.validity());
        let workers = tenure.clone();
        let task =
            tokio::spawn(async move { run_portal(engine, portal, oauth, workers, stop_rx).await });
        self.held.insert(
            lease.portal,
            Held {
                lease,
                tenure,
                stop,
                task,
                since: Instant::now(),
            },
        );
    }

    /// Stops a portal's workers after their in-flight steps (at most a third of a lease period,
    /// while the lease is still ours), then gives its lease up.
    fn retire(&mut self, portal: PortalId) {
        let Some(held) = self.held.remove(&portal) else {
            return;
        };
        let _ = held.stop.send(true);
        self.retiring_ids.insert(portal);
        self.retiring
            .spawn(finish(held, Instant::now() + self.ownership.ttl() / 3));
    }

    /// Finishes a retirement: gives the lease up and disconnects the portal.
    async fn retired(&mut self, done: Result<Lease, tokio::task::JoinError>) {
        let Ok(lease) = done else { return };
        self.retiring_ids.remove(&lease.portal);
        self.engine.hubspot.remove(lease.portal);
        match self.ownership.release(lease).await {
            Ok(()) => tracing::info!(portal = %lease.portal, "lease given up"),
            Err(error) => {
                tracing::warn!(portal = %lease.portal, %error, "could not give the lease up; it expires on its own")
            }
        }
    }

    /// Stops every portal after its in-flight steps and gives up every lease and the membership.
    async fn shutdown(&mut self) {
        let deadline = Instant::now() + SHUTDOWN_GRACE;
        for (portal, held) in std::mem::take(&mut self.held) {
            let _ = held.stop.send(true);
            self.retiring_ids.insert(portal);
            self.retiring.spawn(finish(held, deadline));
        }
        while let Some(done) = self.retiring.join_next().await {
            self.retired(done).await;
        }
        self.ownership.leave().await;
    }
}

/// Tries to take a portal's lease.
async fn acquire(
    ownership: &Ownership,
    portal: Portal,
) -> (Portal, Result<Option<Lease>, StoreError>) {
    let result = ownership.acquire(portal.portal_id).await;
    (portal, result)
}

/// Renews one lease, noting when the renewal started (the lease runs a period from then).
async fn renew(
    ownership: &Ownership,
    lease: Lease,
) -> (Lease, std::time::Instant, Result<bool, StoreError>) {
    let started = std::time::Instant::now();
    (lease, started, ownership.renew(lease).await)
}

/// Waits for a stopped portal's workers until `deadline`, then abandons them; yields the lease.
async fn finish(held: Held, deadline: Instant) -> Lease {
    let mut task = held.task;
    if tokio::time::timeout_at(deadline, &mut task).await.is_err() {
        task.abort();
    }
    held.tenure.revoke();
    held.lease
}

/// A portal's workers: connects it (retrying transient failures), then runs its three loops
/// until stopped; parks it if it is blocked.
async fn run_portal(
    engine: Engine,
    portal: Portal,
    oauth: Option<OAuthApp>,
    tenure: Tenure,
    mut stop: watch::Receiver<bool>,
) {
    let id = portal.portal_id;
    let mut failures = 0;
    loop {
        match setup::connect_portal(&engine, &portal, oauth.as_ref()).await {
            Ok(_) => break,
            Err(error) => {
                if on_error(&engine, id, error, &mut failures, &mut stop).await {
                    return;
                }
            }
        }
    }
    tracing::info!(portal = %id, fence = tenure.fence().0, "running the portal's workers");
    let tenure = Some(&tenure);
    tokio::join!(
        outbound_loop(&engine, id, tenure, stop.clone()),
        inbound_loop(&engine, id, tenure, stop.clone()),
        reconcile_loop(&engine, id, tenure, stop),
    );
}

/// Marks a portal as needing attention and says why.
async fn park(engine: &Engine, portal: PortalId, error: &EngineError) {
    let status = match error {
        EngineError::Api(hubsync_hubspot::ApiError::NeedsReauth { .. }) => {
            PortalStatus::NeedsReauth
        }
        EngineError::Credentials { .. } => PortalStatus::NeedsReauth,
        _ => PortalStatus::Parked,
    };
    tracing::error!(portal = %portal, %error, status = status.as_str(), "portal parked");
    if let Err(e) = engine
        .store
        .set_portal_status(portal, status, Some(&error.to_string()))
        .await
    {
        tracing::warn!(portal = %portal, error = %e, "could not record the portal's status");
    }
}

/// Idle polls in a row after which a loop polls at its slowest.
const IDLE_BACKOFF: u32 = 5;

/// How long an idle loop waits before polling again: the idle poll, stretched up to
/// [`IDLE_BACKOFF`] times while it keeps finding nothing, so that many quiet portals do not
/// keep the database busy (a PostgreSQL NOTIFY still wakes the outbound loops at once).
fn idle_wait(engine: &Engine, idle_polls: u32) -> Duration {
    engine.settings.idle_poll * idle_polls.clamp(1, IDLE_BACKOFF)
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

/// Handles a failed step: stops a loop whose lease moved on, parks a blocked portal (and stops
/// its loop), backs off otherwise. `true` if the loop must end.
async fn on_error(
    engine: &Engine,
    portal: PortalId,
    error: EngineError,
    failures: &mut u32,
    stop: &mut watch::Receiver<bool>,
) -> bool {
    match &error {
        EngineError::Store(StoreError::Fenced { fence, .. }) => {
            tracing::warn!(portal = %portal, fence, "write refused: another process owns the portal now");
            return true;
        }
        error if error.is_lease_expired() => {
            // The supervisor either renews the lease (the workers carry on) or stops them.
            tracing::debug!(portal = %portal, "lease not renewed in time: holding HubSpot writes");
            return pause(stop, Duration::from_millis(100)).await;
        }
        _ => {}
    }
    if error.is_portal_blocked() {
        park(engine, portal, &error).await;
        return true;
    }
    *failures += 1;
    let delay = hubsync_core::retry::backoff(
        *failures,
        Duration::from_millis(200),
        Duration::from_secs(30),
        rand::random(),
    );
    tracing::warn!(portal = %portal, %error, retry_in_ms = delay.as_millis() as u64, "worker step failed");
    pause(stop, delay).await
}

async fn outbound_loop(
    engine: &Engine,
    portal: PortalId,
    tenure: Option<&Tenure>,
    mut stop: watch::Receiver<bool>,
) {
    let mut failures = 0;
    // Local creates wait for the initial import, so they link to existing records by key
    // instead of duplicating them.
    loop {
        let mut all_done = true;
        for ty in ObjectType::ALL {
            match reconcile::import_done(engine, portal, ty).await {
                Ok(done) => all_done &= done,
                Err(_) => all_done = false,
            }
        }
        if all_done || pause(&mut stop, Duration::from_millis(200)).await {
            break;
        }
    }
    let mut lingered = false;
    let mut idle: u32 = 0;
    while !*stop.borrow() {
        if !lingered && pause(&mut stop, engine.settings.outbound_linger).await {
            return;
        }
        lingered = true;
        match outbound::push_once_fenced(engine, portal, tenure).await {
            Ok(step) if step.is_idle() => {
                failures = 0;
                lingered = false;
                idle = idle.saturating_add(1);
                tokio::select! {
                    _ = stop.changed() => {}
                    _ = engine.store.wait_for_outbox(idle_wait(engine, idle)) => {}
                }
            }
            Ok(_) => {
                failures = 0;
                idle = 0;
            }
            Err(error) => {
                if on_error(engine, portal, error, &mut failures, &mut stop).await {
                    return;
                }
            }
        }
    }
}

async fn inbound_loop(
    engine: &Engine,
    portal: PortalId,
    tenure: Option<&Tenure>,
    mut stop: watch::Receiver<bool>,
) {
    let (mut failures, mut idle) = (0, 0_u32);
    while !*stop.borrow() {
        match inbound::apply_once_fenced(engine, portal, tenure).await {
            Ok(step) if step.is_idle() => {
                failures = 0;
                idle = idle.saturating_add(1);
                if pause(&mut stop, idle_wait(engine, idle)).await {
                    return;
                }
            }
            Ok(_) => {
                failures = 0;
                idle = 0;
            }
            Err(error) => {
                if on_error(engine, portal, error, &mut failures, &mut stop).await {
                    return;
                }
            }
        }
    }
}

async fn reconcile_loop(
    engine: &Engine,
    portal: PortalId,
    tenure: Option<&Tenure>,
    mut stop: watch::Receiver<bool>,
) {
    let mut failures = 0;
    // Initial import first, type by type, page by page.
    for ty in ObjectType::ALL {
        loop {
            if *stop.borrow() {
                return;
            }
            let stop_now = stop.clone();
            let on_page = |_: &reconcile::ImportStep| {
                if *stop_now.borrow() {
                    std::ops::ControlFlow::Break(())
                } else {
                    std::ops::ControlFlow::Continue(())
                }
            };
            match reconcile::import_type(engine, portal, ty, tenure, on_page).await {
                Ok(Some(_)) => break,
                Ok(None) => return,
                Err(error) => {
                    if on_error(engine, portal, error, &mut failures, &mut stop).await {
                        return;
                    }
                }
            }
        }
    }
    // Then the associations of everything imported.
    loop {
        if *stop.borrow() {
            return;
        }
        match crate::associations::import_step(engine, portal, tenure).await {
            Ok(None) => break,
            Ok(Some(_)) => failures = 0,
            Err(error) => {
                if on_error(engine, portal, error, &mut failures, &mut stop).await {
                    return;
                }
            }
        }
    }
    tracing::info!(portal = %portal, "initial import complete");
    let mut associations_at = std::time::Instant::now();
    loop {
        if pause(&mut stop, engine.settings.reconcile_interval).await {
            return;
        }
        // Association changes do not move the cursor walk; they get a pass of their own.
        if associations_at.elapsed() >= engine.settings.association_reconcile_interval {
            associations_at = std::time::Instant::now();
            match crate::associations::reconcile_pass(engine, portal, tenure).await {
                Ok(report) => {
                    tracing::info!(portal = %portal, ?report, "association reconcile pass")
                }
                Err(error) => {
                    if on_error(engine, portal, error, &mut failures, &mut stop).await {
                        return;
                    }
                }
            }
        }
        for ty in ObjectType::ALL {
            match reconcile::incremental_pass_fenced(engine, portal, ty, tenure).await {
                Ok(report) => {
                    tracing::info!(portal = %portal, object_type = %ty, ?report, "incremental reconcile pass")
                }
                Err(error) => {
                    if on_error(engine, portal, error, &mut failures, &mut stop).await {
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
