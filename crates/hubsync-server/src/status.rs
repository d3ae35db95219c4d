//! What the status page and `/status.json` show, gathered from the store (portals, queue
//! depths, durable counters, reconcile cursors, conflicts) and the HubSpot client (the live
//! rate budget). Credentials are never read into it: a [`Portal`]'s `auth` is skipped here, so
//! no token can reach the page.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use hubsync_core::{ObjectType, PortalId};
use hubsync_engine::{Engine, counters};
use hubsync_hubspot::BudgetView;
use hubsync_store::{ConflictRecord, Millis, Portal, QueueDepths, StoreError, now_ms};
use parking_lot::Mutex;
use serde::Serialize;

use crate::AppState;

/// How many recent conflicts each portal shows.
const RECENT_CONFLICTS: u32 = 10;
/// Longest value of a conflict shown, in characters.
const VALUE_CHARS: usize = 80;

/// The whole status: every portal.
#[derive(Debug, Clone, Serialize)]
pub struct StatusReport {
    /// When it was gathered (epoch ms).
    pub generated_at: Millis,
    /// The same, as RFC 3339.
    pub generated: String,
    /// Every portal, by id.
    pub portals: Vec<PortalReport>,
}

/// One portal's state.
#[derive(Debug, Clone, Serialize)]
pub struct PortalReport {
    /// The HubSpot portal id.
    pub portal_id: PortalId,
    /// Its display name.
    pub name: String,
    /// `active`, `needs_reauth`, `parked` or `disabled`.
    pub status: &'static str,
    /// Why (empty when active).
    pub status_reason: String,
    /// The rate budget, when the portal is connected in this process.
    pub budget: Option<BudgetReport>,
    /// Outbox, inbox, dead letters and conflicts.
    pub queues: QueueDepths,
    /// Echoes dropped per path.
    pub echoes: EchoReport,
    /// Reconcile progress and findings.
    pub reconcile: ReconcileReport,
    /// The newest conflicts, newest first.
    pub recent_conflicts: Vec<ConflictReport>,
}

/// The rate budget in use, and its recent history.
#[derive(Debug, Clone, Serialize)]
pub struct BudgetReport {
    /// Requests allowed per window.
    pub limit: u32,
    /// Requests used in the current window (limit minus remaining).
    pub in_use: u32,
    /// The window length in seconds.
    pub window_s: f64,
    /// Requests in flight.
    pub in_flight: u32,
    /// Daily requests left, when known.
    pub daily_remaining: Option<u64>,
    /// Search requests used in the search window.
    pub search_in_use: u32,
    /// Search requests allowed per search window.
    pub search_limit: u32,
    /// Background work is parked until then after a daily 429 (RFC 3339), empty if not.
    pub parked_until: String,
    /// Window usage sampled about once a second, oldest first.
    pub samples: Vec<BudgetSample>,
}

/// One sample of the window in use.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct BudgetSample {
    /// When (epoch ms).
    pub at: Millis,
    /// Requests in use in the window then.
    pub in_use: u32,
    /// The window's limit then.
    pub limit: u32,
}

/// Echoes dropped per path (durable counters).
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct EchoReport {
    /// By the event's change source naming our app.
    pub change_source: i64,
    /// By our origin marker property.
    pub origin: i64,
    /// By the fingerprint/base comparison.
    pub fingerprint: i64,
}

/// Where reconciliation stands.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ReconcileReport {
    /// Per object type.
    pub types: BTreeMap<&'static str, TypeReconcile>,
    /// Records repaired locally (HubSpot's state applied), all time.
    pub repaired_local: i64,
    /// Records re-queued for HubSpot, all time.
    pub repaired_remote: i64,
    /// Records applied from HubSpot, all time.
    pub applied: i64,
    /// Records written to HubSpot, all time.
    pub pushed: i64,
}

/// One object type's reconcile cursors.
#[derive(Debug, Clone, Default, Serialize)]
pub struct TypeReconcile {
    /// `not started`, `importing` or `done`.
    pub import: &'static str,
    /// Changes up to this time have been compared (RFC 3339; empty before the first pass).
    pub reconciled_up_to: String,
    /// Whether an incremental pass is part-way.
    pub pass_in_progress: bool,
}

/// A recorded conflict, as shown.
#[derive(Debug, Clone, Serialize)]
pub struct ConflictReport {
    /// The conflict's id.
    pub id: i64,
    /// When it was settled (RFC 3339).
    pub at: String,
    /// The object type.
    pub object_type: ObjectType,
    /// The local record id, when known.
    pub local_id: Option<String>,
    /// The HubSpot record id, when known.
    pub hubspot_id: Option<String>,
    /// The unified field.
    pub field: String,
    /// The app's value (shortened).
    pub local: String,
    /// HubSpot's value (shortened).
    pub remote: String,
    /// The policy that settled it.
    pub policy: String,
    /// `local` or `remote`.
    pub winner: String,
}

/// Per-portal history of the budget in use, kept in memory for the chart. A sample is taken
/// whenever the status is gathered, at most once per [`BudgetHistory::INTERVAL`].
pub(crate) struct BudgetHistory {
    samples: Mutex<HashMap<PortalId, (Instant, VecDeque<BudgetSample>)>>,
}

impl BudgetHistory {
    const INTERVAL: Duration = Duration::from_millis(900);
    const KEEP: usize = 60;

    pub(crate) fn new() -> Self {
        BudgetHistory {
            samples: Mutex::new(HashMap::new()),
        }
    }

    fn record(&self, portal: PortalId, sample: BudgetSample) -> Vec<BudgetSample> {
        let mut all = self.samples.lock();
        let (taken, samples) = all
            .entry(portal)
            .or_insert_with(|| (Instant::now(), VecDeque::with_capacity(Self::KEEP)));
        if samples.is_empty() || taken.elapsed() >= Self::INTERVAL {
            *taken = Instant::now();
            if samples.len() == Self::KEEP {
                samples.pop_front();
            }
            samples.push_back(sample);
        }
        samples.iter().copied().collect()
    }

    fn forget_others(&self, portals: &[PortalId]) {
        self.samples.lock().retain(|p, _| portals.contains(p));
    }
}

/// Gathers the status of every portal, as `/status.json` shows it (for `hubsync status`; the
/// budget history then holds only the current sample).
pub async fn report(engine: &Engine) -> Result<StatusReport, StoreError> {
    gather(engine, &BudgetHistory::new()).await
}

/// Gathers the status of every portal, adding a budget sample to `budgets`.
pub(crate) async fn gather(
    engine: &Engine,
    budgets: &BudgetHistory,
) -> Result<StatusReport, StoreError> {
    let portals = engine.store.list_portals().await?;
    let ids: Vec<PortalId> = portals.iter().map(|p| p.portal_id).collect();
    budgets.forget_others(&ids);
    let mut reports = Vec::with_capacity(portals.len());
    for portal in &portals {
        reports.push(portal_report(engine, budgets, portal).await?);
    }
    let generated_at = now_ms();
    Ok(StatusReport {
        generated_at,
        generated: rfc3339(generated_at),
        portals: reports,
    })
}

async fn portal_report(
    engine: &Engine,
    budgets: &BudgetHistory,
    portal: &Portal,
) -> Result<PortalReport, StoreError> {
    let id = portal.portal_id;
    let store = &engine.store;
    let queues = store.queue_depths(id).await?;
    let counts = store.counters(id).await?;
    let count = |name: &str| counts.get(name).copied().unwrap_or(0);
    let mut reconcile = ReconcileReport {
        repaired_local: count(counters::REPAIRED_LOCAL),
        repaired_remote: count(counters::REPAIRED_REMOTE),
        applied: count(counters::APPLIED),
        pushed: count(counters::PUSHED),
        ..ReconcileReport::default()
    };
    for ty in ObjectType::ALL {
        reconcile
            .types
            .insert(ty.plural(), type_reconcile(engine, id, ty).await?);
    }
    let recent_conflicts = store
        .list_conflicts(id, None, RECENT_CONFLICTS)
        .await?
        .iter()
        .map(conflict_report)
        .collect();
    let budget = engine
        .hubspot
        .budget(id)
        .map(|view| budget_report(budgets, id, &view));
    Ok(PortalReport {
        portal_id: id,
        name: portal.name.clone(),
        status: portal.status.as_str(),
        status_reason: portal.status_reason.clone().unwrap_or_default(),
        budget,
        queues,
        echoes: EchoReport {
            change_source: count(counters::ECHO_CHANGE_SOURCE),
            origin: count(counters::ECHO_ORIGIN),
            fingerprint: count(counters::ECHO_FINGERPRINT),
        },
        reconcile,
        recent_conflicts,
    })
}

/// Reads the reconciler's cursors (named as `hubsync_engine::reconcile` names them).
async fn type_reconcile(
    engine: &Engine,
    portal: PortalId,
    ty: ObjectType,
) -> Result<TypeReconcile, StoreError> {
    let store = &engine.store;
    let import = match store
        .get_cursor(portal, &format!("import:{ty}"))
        .await?
        .as_deref()
    {
        None => "not started",
        Some("done") => "done",
        Some(_) => "importing",
    };
    let reconciled_up_to = store
        .get_cursor(portal, &format!("modified:{ty}"))
        .await?
        .and_then(|c| c.parse::<Millis>().ok())
        .map(rfc3339)
        .unwrap_or_default();
    let pass_in_progress = store
        .get_cursor(portal, &format!("modified_pass:{ty}"))
        .await?
        .is_some_and(|c| !c.is_empty());
    Ok(TypeReconcile {
        import,
        reconciled_up_to,
        pass_in_progress,
    })
}

fn budget_report(history: &BudgetHistory, portal: PortalId, view: &BudgetView) -> BudgetReport {
    let in_use = view.limit.saturating_sub(view.remaining);
    let samples = history.record(
        portal,
        BudgetSample {
            at: now_ms(),
            in_use,
            limit: view.limit,
        },
    );
    BudgetReport {
        limit: view.limit,
        in_use,
        window_s: view.window_ms as f64 / 1000.0,
        in_flight: view.in_flight,
        daily_remaining: view.daily_remaining,
        search_in_use: view.search_limit.saturating_sub(view.search_remaining),
        search_limit: view.search_limit,
        parked_until: view
            .parked_until
            .and_then(|t| {
                t.format(&time::format_description::well_known::Rfc3339)
                    .ok()
            })
            .unwrap_or_default(),
        samples,
    }
}

fn conflict_report(record: &ConflictRecord) -> ConflictReport {
    let c = &record.conflict;
    let policy = serde_json::to_value(c.policy)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default();
    let winner = serde_json::to_value(c.winner)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default();
    ConflictReport {
        id: record.id,
        at: rfc3339(record.created_at),
        object_type: record.object_type,
        local_id: record.local_id.map(|id| id.to_string()),
        hubspot_id: record.hubspot_id.map(|id| id.to_string()),
        field: c.field.clone(),
        local: shorten(&c.local),
        remote: shorten(&c.remote),
        policy,
        winner,
    }
}

fn shorten(value: &serde_json::Value) -> String {
    let text = match value {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    if text.chars().count() <= VALUE_CHARS {
        text
    } else {
        let mut short: String = text.chars().take(VALUE_CHARS - 1).collect();
        short.push('…');
        short
    }
}

/// Epoch milliseconds as RFC 3339 (UTC), or the number if out of range.
pub(crate) fn rfc3339(ms: Millis) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| ms.to_string())
}

/// `GET /status.json`.
pub(crate) async fn status_json(State(state): State<Arc<AppState>>) -> Response {
    match gather(&state.engine, &state.budgets).await {
        Ok(report) => ([(header::CACHE_CONTROL, "no-store")], Json(report)).into_response(),
        Err(error) => unavailable(&error),
    }
}

/// `GET /`.
pub(crate) async fn status_page(State(state): State<Arc<AppState>>) -> Response {
    match gather(&state.engine, &state.budgets).await {
        Ok(report) => (
            [
                (header::CONTENT_TYPE, "text/html; charset=utf-8"),
                (header::CACHE_CONTROL, "no-store"),
                (header::CONTENT_SECURITY_POLICY, crate::page::CSP),
            ],
            crate::page::render(&report),
        )
            .into_response(),
        Err(error) => unavailable(&error),
    }
}

fn unavailable(error: &StoreError) -> Response {
    tracing::error!(%error, "status unavailable: the store failed");
    (
        StatusCode::SERVICE_UNAVAILABLE,
        "status unavailable: the database does not answer\n",
    )
        .into_response()
}
