//! The reconciler: the safety net and the first sync.
//!
//! - [`import_step`]: the initial import of a newly connected portal, one list page (100
//!   records, general lane) per step, committed with its cursor in one transaction, so a crash
//!   resumes from the last committed page. Existing local rows are linked by key (email,
//!   domain) rather than duplicated.
//! - [`incremental_pass`]: walks records modified since the portal's cursor through Search on
//!   the type's last-modified property, in the closed window [cursor − lookback, pass start],
//!   sorted by `hs_object_id` and paged by id (keyset: `hs_object_id > last`), so HubSpot's
//!   10,000-result cap and records sharing a timestamp can never make it skip or loop. Each page
//!   goes through the same merge as a webhook; progress is committed with each page.
//! - [`full_pass`]: a complete comparison of both sides (`hubsync reconcile --full`), which also
//!   finds records deleted in HubSpot without a webhook and local changes that never reached
//!   HubSpot, optionally as a dry run.

use std::collections::BTreeSet;
use std::ops::ControlFlow;
use std::sync::{Mutex, PoisonError};

use hubsync_core::{Fingerprint, HubspotId, ObjectType, PortalId};
use hubsync_hubspot::model::{
    Filter, FilterGroup, FilterOperator, ListParams, SearchRequest, Sort, SortDirection,
};
use hubsync_store::{ApplyOp, OutboxOp};
use serde::Serialize;

use crate::apply::{self, counter};
use crate::inbound::remote_states;
use crate::lease::Tenure;
use crate::{Engine, EngineError, counters, now_ms, property_fields};

/// Records per list page (HubSpot's maximum).
const LIST_PAGE: u32 = 100;
/// Records per search page (HubSpot's maximum).
const SEARCH_PAGE: u32 = 200;

fn import_cursor(ty: ObjectType) -> String {
    format!("import:{ty}")
}
/// The search walk of a two-lane import: `<lowest id imported>` while it runs, with `:end`
/// once it has met the list walk.
fn import_search_cursor(ty: ObjectType) -> String {
    format!("import_search:{ty}")
}
/// The highest id the list walk of an import has committed.
fn import_list_high_cursor(ty: ObjectType) -> String {
    format!("import_list_high:{ty}")
}
/// `import:<type>` once the type is imported.
const IMPORTED: &str = "done";
/// `import:<type>` once the list walk has met the search walk of a two-lane import; the type is
/// imported when the search walk has ended too.
const LISTED: &str = "listed";

/// Where the search walk of a two-lane import stands: the lowest id it has imported, and
/// whether it has ended.
fn parse_search_walk(cursor: Option<&str>) -> Option<(u64, bool)> {
    let cursor = cursor?;
    let (low, end) = match cursor.split_once(':') {
        Some((low, "end")) => (low, true),
        _ => (cursor, false),
    };
    Some((low.parse().ok()?, end))
}

fn modified_cursor(ty: ObjectType) -> String {
    format!("modified:{ty}")
}
fn pass_cursor(ty: ObjectType) -> String {
    format!("modified_pass:{ty}")
}

/// Where an import stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct ImportStep {
    /// Records in the page just committed.
    pub records: usize,
    /// Local rows created.
    pub created: u64,
    /// Local rows linked by key.
    pub linked: u64,
    /// Whether the type is fully imported.
    pub done: bool,
}

/// Whether a type's initial import has finished.
pub async fn import_done(
    engine: &Engine,
    portal: PortalId,
    ty: ObjectType,
) -> Result<bool, EngineError> {
    Ok(engine
        .store
        .get_cursor(portal, &import_cursor(ty))
        .await?
        .as_deref()
        == Some(IMPORTED))
}

/// Imports one page of a type. Call until `done`.
pub async fn import_step(
    engine: &Engine,
    portal: PortalId,
    ty: ObjectType,
) -> Result<ImportStep, EngineError> {
    import_step_fenced(engine, portal, ty, None).await
}

/// [`import_step`] for the holder of the portal's lease: the page's apply carries the tenure's
/// fence and is refused ([`hubsync_store::StoreError::Fenced`]) if the lease has moved on.
pub async fn import_step_fenced(
    engine: &Engine,
    portal: PortalId,
    ty: ObjectType,
    tenure: Option<&Tenure>,
) -> Result<ImportStep, EngineError> {
    let fence = tenure.map(Tenure::fence);
    let cursor = engine.store.get_cursor(portal, &import_cursor(ty)).await?;
    if matches!(cursor.as_deref(), Some(IMPORTED | LISTED)) {
        return Ok(ImportStep {
            done: true,
            ..ImportStep::default()
        });
    }
    if cursor.is_none() {
        start_import(engine, portal, ty, fence).await?;
    }
    let after = cursor.filter(|c| !c.is_empty());
    let api = engine
        .api(portal)?
        .with_priority(hubsync_hubspot::Priority::Reconcile);
    let page = api
        .list_page(
            ty,
            &ListParams {
                limit: Some(LIST_PAGE),
                after,
                properties: engine.read_properties(ty),
                archived: false,
            },
        )
        .await?;
    // In a two-lane import the search walk holds the ids from its lowest one up.
    let search = parse_search_walk(
        engine
            .store
            .get_cursor(portal, &import_search_cursor(ty))
            .await?
            .as_deref(),
    );
    let mut results = page.results;
    let listed = results.len();
    if let Some((low, _)) = search {
        results.retain(|o| o.id.0 < low);
    }
    let met = results.len() < listed;
    let high = results.iter().map(|o| o.id.0).max();
    let records = results.len();
    let states = remote_states(engine, ty, results).await?;
    let done = met || page.next_after.is_none();
    let cursor = match (done, search) {
        (false, _) => page.next_after.unwrap_or_default(),
        // The search walk is still going: it finishes the type.
        (true, Some((_, false))) => LISTED.to_owned(),
        (true, _) => IMPORTED.to_owned(),
    };
    let mut cursors = vec![(import_cursor(ty), cursor)];
    if let Some(high) = high {
        cursors.push((import_list_high_cursor(ty), high.to_string()));
    }
    apply_import_page(engine, portal, states, cursors, fence, records, done).await
}

/// The first step of a type's import, whichever walk takes it.
async fn start_import(
    engine: &Engine,
    portal: PortalId,
    ty: ObjectType,
    fence: Option<hubsync_store::Fence>,
) -> Result<(), EngineError> {
    // Changes made while the import runs are caught by the first incremental pass: its window
    // starts a lookback before this moment, which also covers records created just before the
    // import that Search did not index yet.
    if engine
        .store
        .get_cursor(portal, &modified_cursor(ty))
        .await?
        .is_none()
    {
        engine
            .store
            .set_cursor(portal, &modified_cursor(ty), &now_ms().to_string(), fence)
            .await?;
    }
    Ok(())
}

/// One page of the search walk of a two-lane import: the highest ids not yet imported, 200 a
/// page on the search lane (its own 5 requests/s budget), walking down by id (keyset, so
/// HubSpot's 10,000-result cap never applies) until it meets the list walk coming up.
pub async fn import_search_step(
    engine: &Engine,
    portal: PortalId,
    ty: ObjectType,
    tenure: Option<&Tenure>,
) -> Result<ImportStep, EngineError> {
    let fence = tenure.map(Tenure::fence);
    let store = &engine.store;
    let list = store.get_cursor(portal, &import_cursor(ty)).await?;
    let walk = parse_search_walk(
        store
            .get_cursor(portal, &import_search_cursor(ty))
            .await?
            .as_deref(),
    );
    if list.as_deref() == Some(IMPORTED) || walk.is_some_and(|(_, end)| end) {
        return Ok(ImportStep {
            done: true,
            ..ImportStep::default()
        });
    }
    if list.is_none() {
        start_import(engine, portal, ty, fence).await?;
    }
    let list_high: u64 = store
        .get_cursor(portal, &import_list_high_cursor(ty))
        .await?
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let mut filters = vec![Filter::new(
        "hs_object_id",
        FilterOperator::Gt,
        list_high.to_string(),
    )];
    if let Some((low, _)) = walk {
        filters.push(Filter::new(
            "hs_object_id",
            FilterOperator::Lt,
            low.to_string(),
        ));
    }
    let request = SearchRequest {
        filter_groups: vec![FilterGroup { filters }],
        sorts: vec![Sort {
            property_name: "hs_object_id".to_owned(),
            direction: SortDirection::Descending,
        }],
        query: None,
        properties: engine.read_properties(ty),
        limit: SEARCH_PAGE,
        after: None,
    };
    let api = engine
        .api(portal)?
        .with_priority(hubsync_hubspot::Priority::Reconcile);
    let page = api.search(ty, &request).await?;
    let records = page.results.len();
    // A short page means the walk reached the list walk's committed ids (or the bottom).
    let done = (records as u32) < SEARCH_PAGE;
    let low = page
        .results
        .iter()
        .map(|o| o.id.0)
        .min()
        .or(walk.map(|(low, _)| low))
        .unwrap_or(list_high + 1);
    let states = remote_states(engine, ty, page.results).await?;
    let walk_value = if done {
        format!("{low}:end")
    } else {
        low.to_string()
    };
    let finishes_type = done && list.as_deref() == Some(LISTED);
    let mut cursors = vec![(import_search_cursor(ty), walk_value)];
    if finishes_type {
        cursors.push((import_cursor(ty), IMPORTED.to_owned()));
    }
    apply_import_page(engine, portal, states, cursors, fence, records, done).await
}

/// Applies one import page's records together with the walk's new cursors, in one transaction.
async fn apply_import_page(
    engine: &Engine,
    portal: PortalId,
    states: Vec<apply::RemoteState>,
    cursors: Vec<(String, String)>,
    fence: Option<hubsync_store::Fence>,
    records: usize,
    done: bool,
) -> Result<ImportStep, EngineError> {
    let stats = apply::plan_and_apply(
        engine,
        portal,
        states,
        apply::Source::Reconcile,
        |_| {
            cursors
                .iter()
                .map(|(name, value)| ApplyOp::SetCursor {
                    name: name.clone(),
                    value: value.clone(),
                })
                .collect()
        },
        fence,
    )
    .await?;
    Ok(ImportStep {
        records,
        created: stats.applied,
        linked: stats.linked,
        done,
    })
}

/// What importing one type did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct ImportReport {
    /// Records imported by the list walk (general lane).
    pub listed: u64,
    /// Records imported by the search walk (search lane).
    pub searched: u64,
    /// List calls.
    pub list_calls: u64,
    /// Search calls.
    pub search_calls: u64,
}

/// Imports a type to the end, resuming wherever an earlier import stopped. With
/// `import_search_lane` set, two walks run at once and meet in the middle: list pages of 100
/// from the lowest ids up on the general lane, and search pages of 200 from the highest ids
/// down on the search lane, so the import runs at the sum of both budgets.
///
/// `on_page` sees every committed page; when it breaks, both walks stop after their current
/// page (a later call resumes from the committed cursors) and `Ok(None)` is returned.
pub async fn import_type(
    engine: &Engine,
    portal: PortalId,
    ty: ObjectType,
    tenure: Option<&Tenure>,
    on_page: impl Fn(&ImportStep) -> ControlFlow<()>,
) -> Result<Option<ImportReport>, EngineError> {
    if import_done(engine, portal, ty).await? {
        return Ok(Some(ImportReport::default()));
    }
    let report = Mutex::new(ImportReport::default());
    let count = |step: &ImportStep, search: bool| {
        let mut guard = report.lock().unwrap_or_else(PoisonError::into_inner);
        let r = &mut *guard;
        let (records, calls) = if search {
            (&mut r.searched, &mut r.search_calls)
        } else {
            (&mut r.listed, &mut r.list_calls)
        };
        *records += step.records as u64;
        *calls += u64::from(step.records > 0 || !step.done);
    };
    // The search walk starts once the list walk's first page is in: a type that fits in one
    // list page is then done without a search, and the walks overlap only where they meet.
    let first_page = tokio::sync::Notify::new();
    // Each walk says whether it ended (`true`) or was stopped (`false`).
    let list_walk = async {
        loop {
            let step = import_step_fenced(engine, portal, ty, tenure).await?;
            first_page.notify_one();
            count(&step, false);
            if step.done {
                return Ok::<_, EngineError>(true);
            }
            if on_page(&step).is_break() {
                return Ok(false);
            }
        }
    };
    let search_walk = async {
        if !engine.settings.import_search_lane {
            return Ok(true);
        }
        first_page.notified().await;
        loop {
            let step = import_search_step(engine, portal, ty, tenure).await?;
            count(&step, true);
            if step.done {
                return Ok(true);
            }
            if on_page(&step).is_break() {
                return Ok(false);
            }
        }
    };
    let (listed, searched) = tokio::try_join!(list_walk, search_walk)?;
    if !(listed && searched) {
        return Ok(None);
    }
    // Both walks are over (they may have ended at the same moment, each before seeing the
    // other's end): the type is imported.
    engine
        .store
        .set_cursor(
            portal,
            &import_cursor(ty),
            IMPORTED,
            tenure.map(Tenure::fence),
        )
        .await?;
    Ok(Some(
        report.into_inner().unwrap_or_else(PoisonError::into_inner),
    ))
}

/// What an incremental pass found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct PassReport {
    /// Search calls made.
    pub searches: u64,
    /// Records HubSpot reported modified in the window.
    pub seen: u64,
    /// Records whose HubSpot state was applied locally.
    pub repaired_local: u64,
    /// Records re-queued for HubSpot.
    pub repaired_remote: u64,
    /// Echoes (already in sync).
    pub equal: u64,
    /// Conflicts settled.
    pub conflicts: u64,
}

/// One incremental pass over a type: everything modified since the cursor.
pub async fn incremental_pass(
    engine: &Engine,
    portal: PortalId,
    ty: ObjectType,
) -> Result<PassReport, EngineError> {
    incremental_pass_fenced(engine, portal, ty, None).await
}

/// [`incremental_pass`] for the holder of the portal's lease: every page's apply carries the
/// tenure's fence and is refused ([`hubsync_store::StoreError::Fenced`]) if the lease has moved on.
pub async fn incremental_pass_fenced(
    engine: &Engine,
    portal: PortalId,
    ty: ObjectType,
    tenure: Option<&Tenure>,
) -> Result<PassReport, EngineError> {
    let fence = tenure.map(Tenure::fence);
    let store = &engine.store;
    let lookback = engine.settings.reconcile_lookback.as_millis() as i64;
    // Resume an interrupted pass: "<pass start>:<window start>:<last id>".
    let (pass_start, window_start, mut last_id) =
        match store.get_cursor(portal, &pass_cursor(ty)).await? {
            Some(p) if !p.is_empty() => parse_pass(&p).unwrap_or((now_ms(), 0, 0)),
            _ => {
                let cursor: i64 = store
                    .get_cursor(portal, &modified_cursor(ty))
                    .await?
                    .and_then(|c| c.parse().ok())
                    .unwrap_or(0);
                (now_ms(), (cursor - lookback).max(0), 0)
            }
        };
    let api = engine
        .api(portal)?
        .with_priority(hubsync_hubspot::Priority::Reconcile);
    let lastmod = ty.last_modified_property();
    let mut report = PassReport::default();
    let started = std::time::Instant::now();
    loop {
        let request = SearchRequest {
            filter_groups: vec![FilterGroup {
                filters: vec![
                    Filter::new(lastmod, FilterOperator::Gte, window_start.to_string()),
                    Filter::new(lastmod, FilterOperator::Lte, pass_start.to_string()),
                    Filter::new("hs_object_id", FilterOperator::Gt, last_id.to_string()),
                ],
            }],
            sorts: vec![Sort {
                property_name: "hs_object_id".to_owned(),
                direction: SortDirection::Ascending,
            }],
            query: None,
            properties: engine.read_properties(ty),
            limit: SEARCH_PAGE,
            after: None,
        };
        let page = api.search(ty, &request).await?;
        report.searches += 1;
        let count = page.results.len();
        report.seen += count as u64;
        if let Some(max) = page.results.iter().map(|o| o.id.0).max() {
            last_id = max;
        }
        let states = remote_states(engine, ty, page.results).await?;
        let finished = (count as u32) < SEARCH_PAGE;
        let progress = |stats: &apply::PlanStats| {
            let mut ops = if finished {
                vec![
                    ApplyOp::SetCursor {
                        name: modified_cursor(ty),
                        value: pass_start.to_string(),
                    },
                    ApplyOp::SetCursor {
                        name: pass_cursor(ty),
                        value: String::new(),
                    },
                ]
            } else {
                vec![ApplyOp::SetCursor {
                    name: pass_cursor(ty),
                    value: format!("{pass_start}:{window_start}:{last_id}"),
                }]
            };
            if stats.applied > 0 {
                ops.push(counter(counters::REPAIRED_LOCAL, stats.applied as i64));
            }
            ops
        };
        let stats = apply::plan_and_apply(
            engine,
            portal,
            states,
            apply::Source::Reconcile,
            progress,
            fence,
        )
        .await?;
        report.repaired_local += stats.applied;
        report.repaired_remote += stats.requeued;
        report.equal += stats.echoes;
        report.conflicts += stats.conflicts;
        if finished {
            metrics::histogram!("hubsync_reconcile_duration_seconds", "portal" => portal.to_string(), "object_type" => ty.plural())
                .record(started.elapsed().as_secs_f64());
            metrics::counter!("hubsync_reconcile_repaired_total", "portal" => portal.to_string(), "side" => "local").increment(report.repaired_local);
            metrics::counter!("hubsync_reconcile_repaired_total", "portal" => portal.to_string(), "side" => "remote").increment(report.repaired_remote);
            return Ok(report);
        }
    }
}

fn parse_pass(s: &str) -> Option<(i64, i64, u64)> {
    let mut parts = s.split(':');
    Some((
        parts.next()?.parse().ok()?,
        parts.next()?.parse().ok()?,
        parts.next()?.parse().ok()?,
    ))
}

/// What a full comparison found for one type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct FullReport {
    /// Records identical on both sides.
    pub equal: u64,
    /// Records whose HubSpot state was (or, in a dry run, would be) applied locally.
    pub repaired_local: u64,
    /// Records (re-)queued for HubSpot.
    pub repaired_remote: u64,
    /// Conflicts settled.
    pub conflicts: u64,
    /// HubSpot records with no local row (created locally).
    pub missing_local: u64,
    /// Local rows whose HubSpot record is gone (retired locally).
    pub missing_remote: u64,
}

/// Compares every record of a type on both sides and repairs the differences (or, with
/// `dry_run`, only counts them).
pub async fn full_pass(
    engine: &Engine,
    portal: PortalId,
    ty: ObjectType,
    dry_run: bool,
) -> Result<FullReport, EngineError> {
    let store = &engine.store;
    let api = engine
        .api(portal)?
        .with_priority(hubsync_hubspot::Priority::Reconcile);
    let mut report = FullReport::default();
    let mut seen: BTreeSet<HubspotId> = BTreeSet::new();
    let mut after = None;
    loop {
        let page = api
            .list_page(
                ty,
                &ListParams {
                    limit: Some(LIST_PAGE),
                    after: after.clone(),
                    properties: engine.read_properties(ty),
                    archived: false,
                },
            )
            .await?;
        seen.extend(page.results.iter().map(|o| o.id));
        let states = remote_states(engine, ty, page.results).await?;
        for s in &states {
            if store
                .find_by_hubspot_id(portal, ty, s.hubspot_id)
                .await?
                .is_none()
                && s.hubsync_id.is_none()
            {
                report.missing_local += 1;
            }
        }
        let stats = if dry_run {
            apply::plan(engine, portal, states, apply::Source::Reconcile)
                .await?
                .1
        } else {
            apply::plan_and_apply(
                engine,
                portal,
                states,
                apply::Source::Reconcile,
                |_| Vec::new(),
                None,
            )
            .await?
        };
        report.repaired_local += stats.applied;
        report.repaired_remote += stats.requeued;
        report.equal += stats.echoes;
        report.conflicts += stats.conflicts;
        match page.next_after {
            Some(next) => after = Some(next),
            None => break,
        }
    }

    // Local side: rows HubSpot no longer has, and local changes that never reached HubSpot.
    let mut ops = Vec::new();
    let mut local_after = None;
    loop {
        let rows = store
            .list_records(portal, ty, local_after, 500, &[])
            .await?;
        let Some(last) = rows.last() else { break };
        local_after = Some(last.local_id);
        let ids: Vec<_> = rows.iter().map(|r| r.local_id).collect();
        let syncs = store.get_sync_states(portal, ty, &ids).await?;
        for row in rows.iter().filter(|r| !r.deleted) {
            let sync = syncs.iter().find(|s| s.local_id == row.local_id);
            match row.hubspot_id.or(sync.and_then(|s| s.hubspot_id)) {
                Some(id)
                    if !seen.contains(&id) && store.resolve_alias(portal, ty, id).await? == id =>
                {
                    report.missing_remote += 1;
                    ops.push(ApplyOp::Delete {
                        object_type: ty,
                        hubspot_id: id,
                    });
                }
                Some(_) => {
                    let fields = engine
                        .mappings
                        .normalize(ty, &property_fields(&row.fields))
                        .ok();
                    let base = sync.and_then(|s| s.base.as_ref());
                    if let (Some(fields), Some(base)) = (fields, base)
                        && Fingerprint::of(&fields) != Fingerprint::of(base)
                    {
                        report.repaired_remote += 1;
                        ops.push(ApplyOp::Enqueue {
                            object_type: ty,
                            local_id: row.local_id,
                            op: OutboxOp::Upsert,
                        });
                    }
                }
                None => {
                    report.repaired_remote += 1;
                    ops.push(ApplyOp::Enqueue {
                        object_type: ty,
                        local_id: row.local_id,
                        op: OutboxOp::Upsert,
                    });
                }
            }
        }
    }
    if !dry_run && !ops.is_empty() {
        ops.push(counter(
            counters::REPAIRED_REMOTE,
            report.repaired_remote as i64,
        ));
        store.apply_inbound(portal, ops, &[], None).await?;
    }
    Ok(report)
}
