//! The store logic, written once over [`Backend`] and shared by
//! [`SqliteStore`](crate::SqliteStore) and [`PgStore`](crate::PgStore). The few statements
//! that differ between the dialects are picked with [`pick`].

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use async_trait::async_trait;
use hubsync_core::record::CUSTOM_PREFIX;
use hubsync_core::{
    AppId, Changes, Conflict, ConflictPolicy, FieldMap, Fingerprint, HubspotId, LocalId,
    ObjectType, PortalId, Side,
};
use serde_json::{Value, json};

use crate::batch::{self, Statement};
use crate::db::{Arg, Backend, Dialect, Row, Sql};
use crate::error::StoreError;
use crate::model::{
    AckOutcome, ApiKey, AppDelivery, AppEndpoint, ApplyOp, ApplyResult, ConflictRecord, DeadLetter,
    DeadLetterSource, Fence, Filter, FilterOp, InboundUpsert, InboxEvent, InboxFailure,
    InboxInsert, InboxItem, ItemRange, LocalRecord, Millis, NewDeadLetter, OutboundAck,
    OutboundFailure, OutboxClaim, OutboxOp, Portal, PortalAuth, PortalStatus, Precondition,
    QueueDepths, SyncState, now_ms,
};
use crate::schema::{self, Binder, Kind};
use crate::store::Store;

/// The store over one backend. Use it as [`SqliteStore`](crate::SqliteStore) or
/// [`PgStore`](crate::PgStore).
#[derive(Debug)]
pub struct SqlStore<B: Backend> {
    pub(crate) db: B,
}

/// The statement for this backend's dialect.
fn pick<B: Backend>(sqlite: &'static str, postgres: &'static str) -> Sql {
    match B::DIALECT {
        Dialect::Sqlite => Sql::Static(sqlite),
        Dialect::Postgres => Sql::Static(postgres),
    }
}

// Ids are stored as signed 64-bit integers; HubSpot's ids are far below 2^63.
fn pid(portal: PortalId) -> Arg {
    Arg::Int(Some(i64::try_from(portal.get()).unwrap_or(i64::MAX)))
}

fn lid(local_id: LocalId) -> Arg {
    Arg::Int(Some(local_id.get()))
}

fn hid(hubspot_id: HubspotId) -> Arg {
    Arg::Text(Some(hubspot_id.to_string()))
}

fn ty(object_type: ObjectType) -> Arg {
    Arg::Text(Some(object_type.plural().to_owned()))
}

fn int(v: i64) -> Arg {
    Arg::Int(Some(v))
}

fn json_arg(v: Value) -> Arg {
    Arg::Json(Some(v))
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

fn parse_hubspot_id(
    table: &'static str,
    column: &str,
    v: Option<String>,
) -> Result<Option<HubspotId>, StoreError> {
    match v {
        Some(s) if !s.is_empty() => s
            .parse()
            .map(Some)
            .map_err(|e: hubsync_core::ParseIdError| {
                StoreError::corrupt(table, column, e.to_string())
            }),
        _ => Ok(None),
    }
}

fn parse_object_type(table: &'static str, v: &str) -> Result<ObjectType, StoreError> {
    v.parse().map_err(|e: hubsync_core::UnknownObjectType| {
        StoreError::corrupt(table, "object_type", e.to_string())
    })
}

fn portal_from(table: &'static str, v: i64) -> Result<PortalId, StoreError> {
    u64::try_from(v)
        .map(PortalId)
        .map_err(|_| StoreError::corrupt(table, "portal_id", format!("negative portal id {v}")))
}

fn count_u32(v: i64) -> u32 {
    u32::try_from(v.max(0)).unwrap_or(u32::MAX)
}

fn first(rows: Vec<Row>) -> Option<Row> {
    rows.into_iter().next()
}

/// Lock a selected row until commit on PostgreSQL; SQLite's one writer already holds it.
fn for_update(dialect: Dialect) -> &'static str {
    match dialect {
        Dialect::Sqlite => "",
        Dialect::Postgres => " FOR UPDATE",
    }
}

/// The column assignments that turn `current` into `current + changes`.
struct WritePlan {
    columns: Vec<(&'static str, Arg)>,
    /// The whole new `custom_fields` object, when a custom field changed.
    custom: Option<Value>,
}

fn write_plan(
    object_type: ObjectType,
    current: &FieldMap,
    changes: &Changes,
) -> Result<WritePlan, StoreError> {
    let mut columns = Vec::new();
    let mut custom_changed = false;
    for (field, value) in changes {
        if let Some(name) = field.strip_prefix(CUSTOM_PREFIX) {
            if name.is_empty() {
                return Err(StoreError::UnknownField {
                    object_type,
                    field: field.clone(),
                });
            }
            custom_changed = true;
            continue;
        }
        let column =
            schema::column(object_type, field).ok_or_else(|| StoreError::UnknownField {
                object_type,
                field: field.clone(),
            })?;
        columns.push((
            column.name,
            schema::value_to_arg(object_type, column, value)?,
        ));
    }
    let custom = custom_changed.then(|| {
        let mut merged = current.clone();
        merged.apply(changes);
        let mut object = serde_json::Map::new();
        for (k, v) in merged.iter() {
            if let Some(name) = k.strip_prefix(CUSTOM_PREFIX) {
                object.insert(name.to_owned(), v.clone());
            }
        }
        Value::Object(object)
    });
    Ok(WritePlan { columns, custom })
}

impl<B: Backend> SqlStore<B> {
    pub(crate) fn new(db: B) -> Self {
        SqlStore { db }
    }

    async fn read(&self, sql: impl Into<Sql>, args: Vec<Arg>) -> Result<Vec<Row>, StoreError> {
        self.db.read(sql.into(), args).await
    }

    async fn read_one(
        &self,
        sql: impl Into<Sql>,
        args: Vec<Arg>,
    ) -> Result<Option<Row>, StoreError> {
        Ok(first(self.db.read(sql.into(), args).await?))
    }

    async fn read_records(
        &self,
        object_type: ObjectType,
        select: String,
        args: Vec<Arg>,
    ) -> Result<Vec<LocalRecord>, StoreError> {
        let mut records = self
            .read(Sql::Built(select), args)
            .await?
            .into_iter()
            .map(|row| schema::record_from_row(object_type, row))
            .collect::<Result<Vec<_>, _>>()?;
        records.sort_by_key(|r| r.local_id);
        Ok(records)
    }

    /// One statement in its own write transaction.
    async fn write(&self, sql: impl Into<Sql>, args: Vec<Arg>) -> Result<u64, StoreError> {
        let mut tx = self.db.begin().await?;
        let n = B::exec(&mut tx, sql.into(), args).await?;
        B::commit(tx).await?;
        Ok(n)
    }

    async fn count(&self, sql: &'static str, portal: PortalId) -> Result<u64, StoreError> {
        let row = self.read_one(sql, vec![pid(portal)]).await?;
        let n = match row {
            Some(row) => row.i64("count", "n")?,
            None => 0,
        };
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// Refuses the transaction's writes if `fence` is older than the portal's lease.
    async fn check_fence(
        tx: &mut B::Tx,
        portal: PortalId,
        fence: Option<Fence>,
    ) -> Result<(), StoreError> {
        let Some(fence) = fence else {
            return Ok(());
        };
        let rows = B::fetch(
            tx,
            pick::<B>(
                "SELECT fence FROM leases WHERE portal_id = $1",
                // KEY SHARE: a takeover (`FOR UPDATE`) waits for this transaction, a renewal
                // (a plain `UPDATE`) does not.
                "SELECT fence FROM leases WHERE portal_id = $1 FOR KEY SHARE",
            ),
            vec![pid(portal)],
        )
        .await?;
        let current = match first(rows) {
            Some(row) => Some(row.i64("leases", "fence")?),
            None => None,
        };
        if current != Some(fence.0) {
            return Err(StoreError::Fenced {
                portal,
                fence: fence.0,
            });
        }
        Ok(())
    }

    /// Commits a portal worker's transaction if `fence` is still the portal's, else rolls it
    /// back with [`StoreError::Fenced`]. The fence is checked last, so that a process paused in
    /// the middle of a transaction (past its lease) cannot commit it after it wakes up, and
    /// holds the lease row only for the commit itself: a takeover waits for the commit at most.
    async fn commit_fenced(
        mut tx: B::Tx,
        portal: PortalId,
        fence: Option<Fence>,
    ) -> Result<(), StoreError> {
        Self::check_fence(&mut tx, portal, fence).await?;
        B::commit(tx).await
    }

    async fn notify_outbox(tx: &mut B::Tx, portal: PortalId) -> Result<(), StoreError> {
        if B::DIALECT == Dialect::Postgres {
            B::exec(
                tx,
                Sql::Static("SELECT pg_notify('hubsync_outbox', $1)"),
                vec![Arg::Text(Some(portal.to_string()))],
            )
            .await?;
        }
        Ok(())
    }

    // ----- records -------------------------------------------------------------------------

    fn select_records(object_type: ObjectType) -> String {
        format!(
            "SELECT {} FROM {} WHERE portal_id = $1",
            schema::select_list(B::DIALECT, object_type),
            schema::table(object_type)
        )
    }

    async fn load_record(
        tx: &mut B::Tx,
        portal: PortalId,
        object_type: ObjectType,
        local_id: LocalId,
    ) -> Result<Option<LocalRecord>, StoreError> {
        let sql = format!(
            "{} AND id = $2{}",
            Self::select_records(object_type),
            for_update(B::DIALECT)
        );
        let rows = B::fetch(tx, Sql::Built(sql), vec![pid(portal), lid(local_id)]).await?;
        first(rows)
            .map(|row| schema::record_from_row(object_type, row))
            .transpose()
    }

    async fn resolve_alias_tx(
        tx: &mut B::Tx,
        portal: PortalId,
        object_type: ObjectType,
        hubspot_id: HubspotId,
    ) -> Result<HubspotId, StoreError> {
        let rows = B::fetch(
            tx,
            Sql::Static(
                "SELECT hubspot_id FROM id_aliases WHERE portal_id = $1 AND object_type = $2 AND old_hubspot_id = $3",
            ),
            vec![pid(portal), ty(object_type), hid(hubspot_id)],
        )
        .await?;
        match first(rows) {
            Some(row) => Ok(parse_hubspot_id(
                "id_aliases",
                "hubspot_id",
                row.opt_text("id_aliases", "hubspot_id")?,
            )?
            .unwrap_or(hubspot_id)),
            None => Ok(hubspot_id),
        }
    }

    /// The local ids of the rows holding a HubSpot id, live ones first.
    async fn rows_with_hubspot_id(
        tx: &mut B::Tx,
        portal: PortalId,
        object_type: ObjectType,
        hubspot_id: HubspotId,
        live_only: bool,
    ) -> Result<Vec<LocalId>, StoreError> {
        let table = schema::table(object_type);
        let live = if live_only {
            " AND deleted_at IS NULL"
        } else {
            ""
        };
        let sql = format!(
            "SELECT id FROM {table} WHERE portal_id = $1 AND hubspot_id = $2{live} \
             ORDER BY (deleted_at IS NOT NULL), id"
        );
        let rows = B::fetch(tx, Sql::Built(sql), vec![pid(portal), hid(hubspot_id)]).await?;
        rows.iter()
            .map(|r| r.i64(table, "id").map(LocalId))
            .collect()
    }

    /// The statement mapping merged-away ids among `ids` to their survivors.
    fn aliases_of(portal: PortalId, object_type: ObjectType, ids: &[HubspotId]) -> (Sql, Vec<Arg>) {
        let mut binder = Binder::default();
        binder.bind(pid(portal));
        binder.bind(ty(object_type));
        let placeholders: Vec<String> = ids.iter().map(|id| binder.bind(hid(*id))).collect();
        let sql = format!(
            "SELECT old_hubspot_id, hubspot_id FROM id_aliases WHERE portal_id = $1 \
             AND object_type = $2 AND old_hubspot_id IN ({})",
            placeholders.join(", ")
        );
        (Sql::Built(sql), binder.args)
    }

    /// Each id of `ids` with the id it resolves to (itself unless merged away).
    fn resolved(
        ids: &[HubspotId],
        alias_rows: &[Row],
    ) -> Result<Vec<(HubspotId, HubspotId)>, StoreError> {
        let mut aliases = BTreeMap::new();
        for row in alias_rows {
            let old = parse_hubspot_id(
                "id_aliases",
                "old_hubspot_id",
                row.opt_text("id_aliases", "old_hubspot_id")?,
            )?;
            let new = parse_hubspot_id(
                "id_aliases",
                "hubspot_id",
                row.opt_text("id_aliases", "hubspot_id")?,
            )?;
            if let (Some(old), Some(new)) = (old, new) {
                aliases.insert(old, new);
            }
        }
        Ok(ids
            .iter()
            .map(|id| (*id, aliases.get(id).copied().unwrap_or(*id)))
            .collect())
    }

    /// Inserts a row with `fields`; returns its id.
    async fn insert_row(
        tx: &mut B::Tx,
        portal: PortalId,
        object_type: ObjectType,
        hubspot_id: Option<HubspotId>,
        changes: &Changes,
        now: Millis,
    ) -> Result<LocalId, StoreError> {
        let plan = write_plan(object_type, &FieldMap::new(), changes)?;
        let table = schema::table(object_type);
        let mut binder = Binder::default();
        let mut names = vec![
            "portal_id",
            "hubspot_id",
            "created_at",
            "updated_at",
            "custom_fields",
        ];
        let mut values = vec![
            binder.bind(pid(portal)),
            binder.bind(Arg::Text(hubspot_id.map(|h| h.to_string()))),
            binder.bind(int(now)),
            binder.bind(int(now)),
            binder.bind(json_arg(plan.custom.unwrap_or_else(|| json!({})))),
        ];
        for (name, arg) in plan.columns {
            names.push(name);
            values.push(binder.bind(arg));
        }
        let sql = format!(
            "INSERT INTO {table} ({}) VALUES ({}) RETURNING id",
            names.join(", "),
            values.join(", ")
        );
        let rows = B::fetch(tx, Sql::Built(sql), binder.args).await?;
        let row =
            first(rows).ok_or_else(|| StoreError::corrupt("insert", "id", "no id returned"))?;
        Ok(LocalId(row.i64(table, "id")?))
    }

    /// Applies `changes` to an existing row (and its HubSpot id when given).
    async fn update_row(
        tx: &mut B::Tx,
        portal: PortalId,
        object_type: ObjectType,
        current: &LocalRecord,
        hubspot_id: Option<HubspotId>,
        changes: &Changes,
        now: Millis,
    ) -> Result<(), StoreError> {
        let plan = write_plan(object_type, &current.fields, changes)?;
        let hubspot_changed = hubspot_id.is_some() && hubspot_id != current.hubspot_id;
        if plan.columns.is_empty() && plan.custom.is_none() && !hubspot_changed {
            return Ok(());
        }
        let table = schema::table(object_type);
        let mut binder = Binder::default();
        let mut sets = vec![format!("updated_at = {}", binder.bind(int(now)))];
        if let Some(custom) = plan.custom {
            sets.push(format!("custom_fields = {}", binder.bind(json_arg(custom))));
        }
        if let (true, Some(h)) = (hubspot_changed, hubspot_id) {
            sets.push(format!("hubspot_id = {}", binder.bind(hid(h))));
        }
        for (name, arg) in plan.columns {
            sets.push(format!("{name} = {}", binder.bind(arg)));
        }
        let p = binder.bind(pid(portal));
        let i = binder.bind(lid(current.local_id));
        let sql = format!(
            "UPDATE {table} SET {} WHERE portal_id = {p} AND id = {i}",
            sets.join(", ")
        );
        B::exec(tx, Sql::Built(sql), binder.args).await?;
        Ok(())
    }

    /// Removes a record's pending, unclaimed outbox items.
    async fn drop_pending_outbox(
        tx: &mut B::Tx,
        portal: PortalId,
        object_type: ObjectType,
        local_id: LocalId,
        now: Millis,
    ) -> Result<(), StoreError> {
        B::exec(
            tx,
            Sql::Static(
                "DELETE FROM outbox WHERE portal_id = $1 AND object_type = $2 AND local_id = $3 \
                 AND (locked_until IS NULL OR locked_until < $4)",
            ),
            vec![pid(portal), ty(object_type), lid(local_id), int(now)],
        )
        .await?;
        Ok(())
    }

    async fn retire_row(
        tx: &mut B::Tx,
        portal: PortalId,
        object_type: ObjectType,
        local_id: LocalId,
        now: Millis,
    ) -> Result<(), StoreError> {
        let sql = format!(
            "UPDATE {} SET deleted_at = $1, updated_at = $1 WHERE portal_id = $2 AND id = $3 AND deleted_at IS NULL",
            schema::table(object_type)
        );
        B::exec(
            tx,
            Sql::Built(sql),
            vec![int(now), pid(portal), lid(local_id)],
        )
        .await?;
        Self::drop_pending_outbox(tx, portal, object_type, local_id, now).await?;
        B::exec(
            tx,
            Sql::Static("DELETE FROM sync_state WHERE portal_id = $1 AND object_type = $2 AND local_id = $3"),
            vec![pid(portal), ty(object_type), lid(local_id)],
        )
        .await?;
        Ok(())
    }

    /// Frees `hubspot_id` in `sync_state` for `local_id`: another row's stale claim on it goes.
    async fn free_sync_hubspot_id(
        tx: &mut B::Tx,
        portal: PortalId,
        object_type: ObjectType,
        local_id: LocalId,
        hubspot_id: HubspotId,
    ) -> Result<(), StoreError> {
        B::exec(
            tx,
            Sql::Static(
                "DELETE FROM sync_state WHERE portal_id = $1 AND object_type = $2 AND hubspot_id = $3 AND local_id <> $4",
            ),
            vec![pid(portal), ty(object_type), hid(hubspot_id), lid(local_id)],
        )
        .await?;
        Ok(())
    }

    async fn insert_outbox_item(
        tx: &mut B::Tx,
        portal: PortalId,
        object_type: ObjectType,
        local_id: LocalId,
        op: OutboxOp,
        hubspot_id: Option<String>,
        now: Millis,
    ) -> Result<i64, StoreError> {
        let rows = B::fetch(
            tx,
            Sql::Static(
                "INSERT INTO outbox (portal_id, object_type, local_id, op, hubspot_id, captured_at) \
                 VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
            ),
            vec![pid(portal), ty(object_type), lid(local_id), op.as_str().into(), hubspot_id.into(), int(now)],
        )
        .await?;
        Self::notify_outbox(tx, portal).await?;
        let row =
            first(rows).ok_or_else(|| StoreError::corrupt("outbox", "id", "no id returned"))?;
        row.i64("outbox", "id")
    }

    /// Queues a record, taking the HubSpot id from its row or sync state.
    async fn enqueue_tx(
        tx: &mut B::Tx,
        portal: PortalId,
        object_type: ObjectType,
        local_id: LocalId,
        op: OutboxOp,
        now: Millis,
    ) -> Result<i64, StoreError> {
        let sql = format!(
            "SELECT coalesce(t.hubspot_id, s.hubspot_id) AS hubspot_id \
             FROM sync_state s LEFT JOIN {table} t ON t.portal_id = s.portal_id AND t.id = s.local_id \
             WHERE s.portal_id = $1 AND s.object_type = $2 AND s.local_id = $3 \
             UNION ALL SELECT hubspot_id FROM {table} WHERE portal_id = $1 AND id = $3",
            table = schema::table(object_type)
        );
        let rows = B::fetch(
            tx,
            Sql::Built(sql),
            vec![pid(portal), ty(object_type), lid(local_id)],
        )
        .await?;
        let mut hubspot_id = None;
        for row in rows {
            if let Some(h) = row.opt_text("outbox", "hubspot_id")? {
                hubspot_id = Some(h);
                break;
            }
        }
        Self::insert_outbox_item(tx, portal, object_type, local_id, op, hubspot_id, now).await
    }

    /// Checks every [`ApplyOp::Require`] of a batch before any of its ops runs (so against the
    /// state the batch was planned on). On PostgreSQL the rows are locked in a fixed order, so
    /// that they stay as checked until the commit and two appliers cannot deadlock on them.
    async fn check_preconditions(
        tx: &mut B::Tx,
        portal: PortalId,
        ops: &[ApplyOp],
    ) -> Result<(), StoreError> {
        let mut required: Vec<&Precondition> = ops
            .iter()
            .filter_map(|op| match op {
                ApplyOp::Require(p) => Some(p),
                _ => None,
            })
            .collect();
        required.sort_by_key(|p| match p {
            Precondition::Unchanged {
                object_type,
                local_id,
                ..
            } => (0, object_type.plural(), local_id.0),
            Precondition::NoRow {
                object_type,
                hubspot_id,
            } => (1, object_type.plural(), hubspot_id.0 as i64),
        });
        // Rows that must not exist are checked a type at a time, in one query each.
        let mut absent: BTreeMap<ObjectType, Vec<HubspotId>> = BTreeMap::new();
        for precondition in required {
            let (object_type, holds) = match precondition {
                Precondition::NoRow {
                    object_type,
                    hubspot_id,
                } => {
                    absent.entry(*object_type).or_default().push(*hubspot_id);
                    continue;
                }
                Precondition::Unchanged {
                    object_type,
                    local_id,
                    updated_at,
                    sync,
                } => {
                    let row = Self::load_record(tx, portal, *object_type, *local_id).await?;
                    let holds = row.is_some_and(|r| r.updated_at == *updated_at)
                        && Self::load_sync_state_tx(tx, portal, *object_type, *local_id)
                            .await?
                            .as_ref()
                            == sync.as_deref();
                    (*object_type, holds)
                }
            };
            if !holds {
                return Err(StoreError::Stale {
                    object_type,
                    record: precondition.record(),
                });
            }
        }
        for (object_type, ids) in absent {
            for chunk in ids.chunks(500) {
                Self::check_absent(tx, portal, object_type, chunk).await?;
            }
        }
        Ok(())
    }

    /// Refuses the batch ([`StoreError::Stale`]) if a row, live or deleted, holds any of `ids`
    /// (alias-aware).
    async fn check_absent(
        tx: &mut B::Tx,
        portal: PortalId,
        object_type: ObjectType,
        ids: &[HubspotId],
    ) -> Result<(), StoreError> {
        let (sql, args) = Self::aliases_of(portal, object_type, ids);
        let resolved = Self::resolved(ids, &B::fetch(tx, sql, args).await?)?;
        let targets: std::collections::BTreeSet<HubspotId> =
            resolved.iter().map(|(_, to)| *to).collect();
        if B::DIALECT == Dialect::Postgres {
            // There is no row to lock yet: two appliers that both plan to create one record's
            // row (the two import walks meeting, an event and a reconcile pass) take turns
            // here, in id order, and the second sees the first's row.
            for id in &targets {
                B::exec(
                    tx,
                    Sql::Static(
                        "SELECT pg_advisory_xact_lock(hashtextextended(\
                         'hubsync_record:' || $1::text || ':' || $2 || ':' || $3::text, 0))",
                    ),
                    vec![pid(portal), ty(object_type), hid(*id)],
                )
                .await?;
            }
        }
        let mut binder = Binder::default();
        binder.bind(pid(portal));
        let placeholders: Vec<String> = targets.iter().map(|id| binder.bind(hid(*id))).collect();
        let sql = format!(
            "SELECT hubspot_id FROM {} WHERE portal_id = $1 AND hubspot_id IN ({}) LIMIT 1",
            schema::table(object_type),
            placeholders.join(", ")
        );
        if let Some(row) = first(B::fetch(tx, Sql::Built(sql), binder.args).await?) {
            let id = row.opt_text(schema::table(object_type), "hubspot_id")?;
            return Err(StoreError::Stale {
                object_type,
                record: format!("hubspot:{}", id.unwrap_or_default()),
            });
        }
        Ok(())
    }

    /// The claim, in the claimer's transaction: walks the claimable items oldest first, a page
    /// at a time, until it has `limit` records (a record with an item still leased to someone
    /// else is skipped whole, so one record is never pushed twice at once); then leases every
    /// claimable item of those records and returns them. The walk visits only as many items as
    /// it needs, however many items each record has queued.
    async fn claim_walk(
        tx: &mut B::Tx,
        portal: PortalId,
        now: Millis,
        until: Millis,
        limit: u32,
        worker: &str,
    ) -> Result<Vec<Row>, StoreError> {
        const T: &str = "outbox";
        let limit = limit as usize;
        let page = limit.clamp(16, 1_000);
        let mut seen: BTreeSet<(String, i64)> = BTreeSet::new();
        let mut chosen: BTreeMap<String, Vec<i64>> = BTreeMap::new();
        let (mut found, mut after) = (0, 0);
        'walk: loop {
            let rows = B::fetch(
                tx,
                Sql::Static(include_str!("../queries/claim_outbox_walk.sql")),
                vec![pid(portal), int(now), int(after), int(page as i64)],
            )
            .await?;
            let full = rows.len() == page;
            for row in rows {
                after = row.i64(T, "id")?;
                let record = (row.text(T, "object_type")?, row.i64(T, "local_id")?);
                if row.i64(T, "leased")? == 0 && !seen.contains(&record) {
                    chosen.entry(record.0.clone()).or_default().push(record.1);
                    found += 1;
                }
                seen.insert(record);
                if found == limit {
                    break 'walk;
                }
            }
            if !full {
                break;
            }
        }
        let mut items = Vec::new();
        for (object_type, ids) in chosen {
            let mut binder = Binder::default();
            binder.bind(pid(portal));
            binder.bind(object_type.into());
            binder.bind(int(now));
            let list = batch::id_list(B::DIALECT, &mut binder, ids);
            let claimable = "portal_id = $1 AND object_type = $2 AND not_before <= $3 \
                             AND (locked_until IS NULL OR locked_until < $3)";
            match B::DIALECT {
                Dialect::Sqlite => {
                    // The one writer selects the items, then leases exactly them.
                    let sql = format!(
                        "SELECT id, object_type, local_id, op, hubspot_id, captured_at, \
                         attempts + 1 AS attempts FROM outbox \
                         WHERE {claimable} AND local_id IN {list}"
                    );
                    let found = B::fetch(tx, Sql::Built(sql), binder.args).await?;
                    let ids = found
                        .iter()
                        .map(|item| item.i64(T, "id").map(Value::from))
                        .collect::<Result<Vec<_>, _>>()?;
                    B::exec(
                        tx,
                        Sql::Static(
                            "UPDATE outbox SET locked_by = $1, locked_until = $2, attempts = attempts + 1 \
                             WHERE id IN (SELECT value FROM json_each($3))",
                        ),
                        vec![worker.into(), int(until), json_arg(Value::Array(ids))],
                    )
                    .await?;
                    items.extend(found);
                }
                Dialect::Postgres => {
                    // SKIP LOCKED keeps the claim off rows an ack is deleting.
                    let worker_at = binder.bind(worker.into());
                    let until_at = binder.bind(int(until));
                    let sql = format!(
                        "UPDATE outbox SET locked_by = {worker_at}, locked_until = {until_at}, \
                         attempts = attempts + 1 WHERE id IN (SELECT id FROM outbox \
                         WHERE {claimable} AND local_id IN {list} FOR UPDATE SKIP LOCKED) \
                         RETURNING id, object_type, local_id, op, hubspot_id, captured_at, attempts"
                    );
                    items.extend(B::fetch(tx, Sql::Built(sql), binder.args).await?);
                }
            }
        }
        Ok(items)
    }

    /// Turns each update's acknowledgement ([`AckOutcome::Written`] with `written_fields`) into
    /// the sync state to store: the base as it is now (read in this transaction, locked on
    /// PostgreSQL) with the written fields' values and times laid over it. Acknowledgements of
    /// creates, and of records whose stored state belongs to another HubSpot record, keep their
    /// whole base.
    async fn overlay_written_fields(
        tx: &mut B::Tx,
        portal: PortalId,
        mut acks: Vec<OutboundAck>,
    ) -> Result<(Vec<OutboundAck>, BTreeSet<(ObjectType, LocalId)>), StoreError> {
        let mut wanted: BTreeMap<ObjectType, Vec<i64>> = BTreeMap::new();
        for ack in &acks {
            if let AckOutcome::Written {
                written_fields: Some(_),
                ..
            } = &ack.outcome
            {
                wanted
                    .entry(ack.range.object_type)
                    .or_default()
                    .push(ack.range.local_id.get());
            }
        }
        /// What the overlay needs of a stored sync state.
        struct Stored {
            hubspot_id: Option<HubspotId>,
            base: Option<FieldMap>,
            base_ts: BTreeMap<String, Millis>,
        }
        const T: &str = "sync_state";
        let mut current: BTreeMap<(ObjectType, LocalId), Stored> = BTreeMap::new();
        for (object_type, ids) in wanted {
            for chunk in ids.chunks(500) {
                let mut binder = Binder::default();
                binder.bind(pid(portal));
                binder.bind(ty(object_type));
                let list = batch::id_list(B::DIALECT, &mut binder, chunk.iter().copied());
                let sql = format!(
                    "SELECT local_id, hubspot_id, base, base_ts FROM sync_state \
                     WHERE portal_id = $1 AND object_type = $2 \
                     AND local_id IN {list} ORDER BY local_id{}",
                    for_update(B::DIALECT)
                );
                for row in B::fetch(tx, Sql::Built(sql), binder.args).await? {
                    let state = Stored {
                        hubspot_id: parse_hubspot_id(
                            T,
                            "hubspot_id",
                            row.opt_text(T, "hubspot_id")?,
                        )?,
                        base: row.opt_de(T, "base")?,
                        base_ts: row.opt_de(T, "base_ts")?.unwrap_or_default(),
                    };
                    current.insert((object_type, LocalId(row.i64(T, "local_id")?)), state);
                }
            }
        }
        let mut id_recorded = BTreeSet::new();
        for ack in &mut acks {
            let AckOutcome::Written {
                hubspot_id,
                base,
                base_ts,
                written_fields: Some(written),
                ..
            } = &mut ack.outcome
            else {
                continue;
            };
            let Some(state) = current.get(&(ack.range.object_type, ack.range.local_id)) else {
                continue;
            };
            let (Some(stored), true) = (&state.base, state.hubspot_id == Some(*hubspot_id)) else {
                continue;
            };
            id_recorded.insert((ack.range.object_type, ack.range.local_id));
            let mut merged = stored.clone();
            let mut times = state.base_ts.clone();
            for field in written.iter() {
                merged.set(field.clone(), base.get(field).clone());
                match base_ts.get(field) {
                    Some(ts) => times.insert(field.clone(), *ts),
                    None => times.remove(field),
                };
            }
            *base = merged;
            *base_ts = times;
        }
        Ok((acks, id_recorded))
    }

    async fn load_sync_state_tx(
        tx: &mut B::Tx,
        portal: PortalId,
        object_type: ObjectType,
        local_id: LocalId,
    ) -> Result<Option<SyncState>, StoreError> {
        let sql = format!(
            "SELECT * FROM sync_state WHERE portal_id = $1 AND object_type = $2 AND local_id = $3{}",
            for_update(B::DIALECT)
        );
        let rows = B::fetch(
            tx,
            Sql::Built(sql),
            vec![pid(portal), ty(object_type), lid(local_id)],
        )
        .await?;
        first(rows).map(|row| sync_state_from_row(&row)).transpose()
    }

    async fn apply_upsert(
        tx: &mut B::Tx,
        portal: PortalId,
        upsert: &InboundUpsert,
        now: Millis,
    ) -> Result<Option<LocalId>, StoreError> {
        let object_type = upsert.object_type;
        let hubspot_id = Self::resolve_alias_tx(tx, portal, object_type, upsert.hubspot_id).await?;
        let existing = match upsert.local_id {
            Some(id) => Some(id),
            None => Self::rows_with_hubspot_id(tx, portal, object_type, hubspot_id, true)
                .await?
                .first()
                .copied(),
        };
        let local_id = match existing {
            Some(id) => {
                let Some(current) = Self::load_record(tx, portal, object_type, id).await? else {
                    // The app removed the row meanwhile; its delete is queued and wins.
                    tracing::debug!(portal = %portal, object_type = %object_type, local_id = %id,
                        "inbound upsert skipped: the app row is gone");
                    return Ok(None);
                };
                Self::update_row(
                    tx,
                    portal,
                    object_type,
                    &current,
                    Some(hubspot_id),
                    &upsert.changes,
                    now,
                )
                .await?;
                id
            }
            None => {
                Self::insert_row(
                    tx,
                    portal,
                    object_type,
                    Some(hubspot_id),
                    &upsert.changes,
                    now,
                )
                .await?
            }
        };
        Self::free_sync_hubspot_id(tx, portal, object_type, local_id, hubspot_id).await?;
        B::exec(
            tx,
            Sql::Static(
                "INSERT INTO sync_state (portal_id, object_type, local_id, hubspot_id, base, base_ts, fp_received, \
                 remote_updated_at, synced_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
                 ON CONFLICT (portal_id, object_type, local_id) DO UPDATE SET hubspot_id = excluded.hubspot_id, \
                 base = excluded.base, base_ts = excluded.base_ts, fp_received = excluded.fp_received, \
                 remote_updated_at = coalesce(excluded.remote_updated_at, sync_state.remote_updated_at), \
                 synced_at = excluded.synced_at",
            ),
            vec![
                pid(portal),
                ty(object_type),
                lid(local_id),
                hid(hubspot_id),
                json_arg(serde_json::to_value(&upsert.base).unwrap_or(Value::Null)),
                json_arg(serde_json::to_value(&upsert.base_ts).unwrap_or(Value::Null)),
                Arg::Text(upsert.fp_received.map(|f| f.to_hex())),
                Arg::Int(upsert.remote_updated_at),
                int(now),
            ],
        )
        .await?;
        Ok(Some(local_id))
    }

    async fn apply_delete(
        tx: &mut B::Tx,
        portal: PortalId,
        object_type: ObjectType,
        hubspot_id: HubspotId,
        now: Millis,
    ) -> Result<Option<LocalId>, StoreError> {
        let hubspot_id = Self::resolve_alias_tx(tx, portal, object_type, hubspot_id).await?;
        let ids = Self::rows_with_hubspot_id(tx, portal, object_type, hubspot_id, true).await?;
        for id in &ids {
            Self::retire_row(tx, portal, object_type, *id, now).await?;
        }
        B::exec(
            tx,
            Sql::Static("DELETE FROM sync_state WHERE portal_id = $1 AND object_type = $2 AND hubspot_id = $3"),
            vec![pid(portal), ty(object_type), hid(hubspot_id)],
        )
        .await?;
        Ok(ids.first().copied())
    }

    async fn apply_merge(
        tx: &mut B::Tx,
        portal: PortalId,
        object_type: ObjectType,
        survivor: HubspotId,
        merged: &[HubspotId],
        now: Millis,
    ) -> Result<Option<LocalId>, StoreError> {
        let mut survivor_row = Self::rows_with_hubspot_id(tx, portal, object_type, survivor, true)
            .await?
            .first()
            .copied();
        for &old in merged.iter().filter(|&&m| m != survivor) {
            B::exec(
                tx,
                Sql::Static(
                    "INSERT INTO id_aliases (portal_id, object_type, old_hubspot_id, hubspot_id, created_at) \
                     VALUES ($1, $2, $3, $4, $5) ON CONFLICT (portal_id, object_type, old_hubspot_id) \
                     DO UPDATE SET hubspot_id = excluded.hubspot_id",
                ),
                vec![pid(portal), ty(object_type), hid(old), hid(survivor), int(now)],
            )
            .await?;
            // Ids that pointed at `old` now point at the survivor: one hop always resolves.
            B::exec(
                tx,
                Sql::Static(
                    "UPDATE id_aliases SET hubspot_id = $4 WHERE portal_id = $1 AND object_type = $2 AND hubspot_id = $3",
                ),
                vec![pid(portal), ty(object_type), hid(old), hid(survivor)],
            )
            .await?;
            for id in Self::rows_with_hubspot_id(tx, portal, object_type, old, true).await? {
                if survivor_row.is_none() {
                    // Re-point this row to the survivor, keeping its fields and sync state.
                    let sql = format!(
                        "UPDATE {} SET hubspot_id = $1, updated_at = $2 WHERE portal_id = $3 AND id = $4",
                        schema::table(object_type)
                    );
                    B::exec(
                        tx,
                        Sql::Built(sql),
                        vec![hid(survivor), int(now), pid(portal), lid(id)],
                    )
                    .await?;
                    Self::free_sync_hubspot_id(tx, portal, object_type, id, survivor).await?;
                    B::exec(
                        tx,
                        Sql::Static(
                            "UPDATE sync_state SET hubspot_id = $4 WHERE portal_id = $1 AND object_type = $2 AND local_id = $3",
                        ),
                        vec![pid(portal), ty(object_type), lid(id), hid(survivor)],
                    )
                    .await?;
                    survivor_row = Some(id);
                } else {
                    Self::retire_row(tx, portal, object_type, id, now).await?;
                }
            }
        }
        Ok(survivor_row)
    }

    async fn insert_conflicts(
        tx: &mut B::Tx,
        portal: PortalId,
        object_type: ObjectType,
        local_id: Option<LocalId>,
        hubspot_id: Option<HubspotId>,
        conflicts: &[Conflict],
        now: Millis,
    ) -> Result<(), StoreError> {
        for c in conflicts {
            B::exec(
                tx,
                Sql::Static(
                    "INSERT INTO conflicts (portal_id, object_type, local_id, hubspot_id, field, base, local_value, \
                     local_ts, remote_value, remote_ts, policy, winner, created_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
                ),
                vec![
                    pid(portal),
                    ty(object_type),
                    Arg::Int(local_id.map(LocalId::get)),
                    Arg::Text(hubspot_id.map(|h| h.to_string())),
                    c.field.as_str().into(),
                    json_arg(c.base.clone()),
                    json_arg(c.local.clone()),
                    int(c.local_ts),
                    json_arg(c.remote.clone()),
                    int(c.remote_ts),
                    policy_name(c.policy).into(),
                    side_name(c.winner).into(),
                    int(now),
                ],
            )
            .await?;
        }
        Ok(())
    }

    async fn add_counter_tx(
        tx: &mut B::Tx,
        portal: PortalId,
        name: &str,
        delta: i64,
    ) -> Result<(), StoreError> {
        B::exec(
            tx,
            Sql::Static(
                "INSERT INTO counters (portal_id, name, value) VALUES ($1, $2, $3) \
                 ON CONFLICT (portal_id, name) DO UPDATE SET value = counters.value + excluded.value",
            ),
            vec![pid(portal), name.into(), int(delta)],
        )
        .await?;
        Ok(())
    }

    async fn set_cursor_tx(
        tx: &mut B::Tx,
        portal: PortalId,
        name: &str,
        value: &str,
    ) -> Result<(), StoreError> {
        B::exec(
            tx,
            Sql::Static(
                "INSERT INTO cursors (portal_id, name, value, updated_at) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (portal_id, name) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
            ),
            vec![pid(portal), name.into(), value.into(), int(now_ms())],
        )
        .await?;
        Ok(())
    }

    async fn enqueue_app_event_tx(
        tx: &mut B::Tx,
        portal: PortalId,
        payload: &Value,
    ) -> Result<u64, StoreError> {
        let now = now_ms();
        B::exec(
            tx,
            Sql::Static(
                "INSERT INTO app_deliveries (portal_id, endpoint_id, payload, attempts, next_attempt_at, created_at) \
                 SELECT portal_id, id, $2, 0, $3, $3 FROM app_endpoints WHERE portal_id = $1",
            ),
            vec![pid(portal), json_arg(payload.clone()), int(now)],
        )
        .await
    }

    async fn insert_dead_letter_tx(
        tx: &mut B::Tx,
        portal: PortalId,
        letter: &NewDeadLetter,
        now: Millis,
    ) -> Result<i64, StoreError> {
        let rows = B::fetch(
            tx,
            Sql::Static(
                "INSERT INTO dead_letters (portal_id, source, object_type, local_id, hubspot_id, reason, category, \
                 payload, attempts, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING id",
            ),
            vec![
                pid(portal),
                letter.source.as_str().into(),
                Arg::Text(letter.object_type.map(|t| t.plural().to_owned())),
                Arg::Int(letter.local_id.map(LocalId::get)),
                Arg::Text(letter.hubspot_id.map(|h| h.to_string())),
                letter.reason.as_str().into(),
                letter.category.as_str().into(),
                json_arg(letter.payload.clone()),
                int(i64::from(letter.attempts)),
                int(now),
            ],
        )
        .await?;
        tracing::warn!(portal = %portal, source = letter.source.as_str(), category = %letter.category,
            local_id = ?letter.local_id, hubspot_id = ?letter.hubspot_id, reason = %letter.reason, "dead-lettered");
        let row = first(rows)
            .ok_or_else(|| StoreError::corrupt("dead_letters", "id", "no id returned"))?;
        row.i64("dead_letters", "id")
    }

    /// Stores `events` in multi-row `INSERT … ON CONFLICT DO NOTHING` statements (a few per
    /// delivery instead of one per event), in the caller's transaction; returns how many were
    /// new. An event already stored, or repeated within `events`, is skipped by its identity.
    async fn insert_inbox_tx(
        tx: &mut B::Tx,
        events: &[InboxEvent],
        now: Millis,
    ) -> Result<u64, StoreError> {
        const COLUMNS: usize = 8;
        let mut inserted = 0;
        for range in batch::chunks(events.len(), COLUMNS, 0) {
            let mut statement = Statement::new(B::DIALECT);
            statement.push(
                "INSERT INTO inbox (portal_id, identity, subscription_type, object_type, object_id, \
                 occurred_at, received_at, payload) VALUES ",
            );
            for (i, event) in events[range].iter().enumerate() {
                let payload = serde_json::to_string(&event.payload)
                    .map_err(|e| StoreError::corrupt("inbox", "payload", e.to_string()))?;
                statement.push(if i == 0 { "(" } else { ", (" });
                for arg in [
                    pid(event.portal),
                    event.identity().into(),
                    event.subscription_type.as_str().into(),
                    Arg::Text(event.object_type.map(|t| t.plural().to_owned())),
                    Arg::Text(event.object_id.map(|h| h.to_string())),
                    int(event.occurred_at),
                    int(now),
                ] {
                    statement.bind(arg).push(", ");
                }
                statement.bind_json_text(payload).push(")");
            }
            statement.push(" ON CONFLICT (portal_id, identity) DO NOTHING");
            let (sql, args) = statement.finish();
            inserted += B::exec(tx, sql, args).await?;
        }
        Ok(inserted)
    }
}

fn policy_name(policy: ConflictPolicy) -> &'static str {
    match policy {
        ConflictPolicy::RemoteWins => "remote_wins",
        ConflictPolicy::LocalWins => "local_wins",
        ConflictPolicy::LatestWins => "latest_wins",
    }
}

fn side_name(side: Side) -> &'static str {
    match side {
        Side::Local => "local",
        Side::Remote => "remote",
    }
}

fn parse_policy(v: &str) -> Result<ConflictPolicy, StoreError> {
    match v {
        "remote_wins" => Ok(ConflictPolicy::RemoteWins),
        "local_wins" => Ok(ConflictPolicy::LocalWins),
        "latest_wins" => Ok(ConflictPolicy::LatestWins),
        other => Err(StoreError::corrupt(
            "conflicts",
            "policy",
            format!("unknown policy `{other}`"),
        )),
    }
}

fn parse_side(v: &str) -> Result<Side, StoreError> {
    match v {
        "local" => Ok(Side::Local),
        "remote" => Ok(Side::Remote),
        other => Err(StoreError::corrupt(
            "conflicts",
            "winner",
            format!("unknown side `{other}`"),
        )),
    }
}

fn portal_from_row(row: &Row) -> Result<Portal, StoreError> {
    const T: &str = "portals";
    let status = row.text(T, "status")?;
    Ok(Portal {
        portal_id: portal_from(T, row.i64(T, "portal_id")?)?,
        name: row.text(T, "name")?,
        app_id: row
            .opt_i64(T, "app_id")?
            .map(|v| u64::try_from(v).map(AppId))
            .transpose()
            .map_err(|_| StoreError::corrupt(T, "app_id", "negative app id"))?,
        auth: PortalAuth(row.json(T, "auth")?),
        status: status
            .parse()
            .map_err(|e: String| StoreError::corrupt(T, "status", e))?,
        status_reason: row.opt_text(T, "status_reason")?,
        config: row.json(T, "config")?,
        created_at: row.i64(T, "created_at")?,
    })
}

fn fingerprint(
    table: &'static str,
    column: &str,
    v: Option<String>,
) -> Result<Option<Fingerprint>, StoreError> {
    v.map(|s| {
        Fingerprint::from_hex(&s)
            .ok_or_else(|| StoreError::corrupt(table, column, "invalid fingerprint"))
    })
    .transpose()
}

/// The columns of `sync_state`.
const SYNC_STATE_COLUMNS: &[&str] = &[
    "object_type",
    "local_id",
    "hubspot_id",
    "hubsync_id",
    "base",
    "base_ts",
    "fp_sent",
    "fp_received",
    "last_origin",
    "remote_updated_at",
    "synced_at",
];

fn sync_state_from_row(row: &Row) -> Result<SyncState, StoreError> {
    const T: &str = "sync_state";
    let base = row.opt_de(T, "base")?;
    let base_ts = row.opt_de(T, "base_ts")?.unwrap_or_default();
    Ok(SyncState {
        object_type: parse_object_type(T, &row.text(T, "object_type")?)?,
        local_id: LocalId(row.i64(T, "local_id")?),
        hubspot_id: parse_hubspot_id(T, "hubspot_id", row.opt_text(T, "hubspot_id")?)?,
        hubsync_id: row.opt_text(T, "hubsync_id")?,
        base,
        base_ts,
        fp_sent: fingerprint(T, "fp_sent", row.opt_text(T, "fp_sent")?)?,
        fp_received: fingerprint(T, "fp_received", row.opt_text(T, "fp_received")?)?,
        last_origin: row.opt_text(T, "last_origin")?,
        remote_updated_at: row.opt_i64(T, "remote_updated_at")?,
        synced_at: row.opt_i64(T, "synced_at")?,
    })
}

fn dead_letter_from_row(row: &Row) -> Result<DeadLetter, StoreError> {
    const T: &str = "dead_letters";
    Ok(DeadLetter {
        id: row.i64(T, "id")?,
        portal: portal_from(T, row.i64(T, "portal_id")?)?,
        letter: NewDeadLetter {
            source: row
                .text(T, "source")?
                .parse()
                .map_err(|e: String| StoreError::corrupt(T, "source", e))?,
            object_type: row
                .opt_text(T, "object_type")?
                .map(|t| parse_object_type(T, &t))
                .transpose()?,
            local_id: row.opt_i64(T, "local_id")?.map(LocalId),
            hubspot_id: parse_hubspot_id(T, "hubspot_id", row.opt_text(T, "hubspot_id")?)?,
            reason: row.text(T, "reason")?,
            category: row.text(T, "category")?,
            payload: row.json(T, "payload")?,
            attempts: count_u32(row.i64(T, "attempts")?),
        },
        created_at: row.i64(T, "created_at")?,
    })
}

fn conflict_from_row(row: &Row) -> Result<ConflictRecord, StoreError> {
    const T: &str = "conflicts";
    Ok(ConflictRecord {
        id: row.i64(T, "id")?,
        portal: portal_from(T, row.i64(T, "portal_id")?)?,
        object_type: parse_object_type(T, &row.text(T, "object_type")?)?,
        local_id: row.opt_i64(T, "local_id")?.map(LocalId),
        hubspot_id: parse_hubspot_id(T, "hubspot_id", row.opt_text(T, "hubspot_id")?)?,
        conflict: Conflict {
            field: row.text(T, "field")?,
            base: row.json(T, "base")?,
            local: row.json(T, "local_value")?,
            local_ts: row.i64(T, "local_ts")?,
            remote: row.json(T, "remote_value")?,
            remote_ts: row.i64(T, "remote_ts")?,
            policy: parse_policy(&row.text(T, "policy")?)?,
            winner: parse_side(&row.text(T, "winner")?)?,
        },
        created_at: row.i64(T, "created_at")?,
    })
}

fn api_key_from_row(row: &Row) -> Result<ApiKey, StoreError> {
    const T: &str = "api_keys";
    let portals: Vec<PortalId> = serde_json::from_value(row.json(T, "portal_ids")?)
        .map_err(|e| StoreError::corrupt(T, "portal_ids", e.to_string()))?;
    Ok(ApiKey {
        id: row.i64(T, "id")?,
        key_hash: row.text(T, "key_hash")?,
        name: row.text(T, "name")?,
        portals,
        created_at: row.i64(T, "created_at")?,
    })
}

fn endpoint_from_row(row: &Row) -> Result<AppEndpoint, StoreError> {
    const T: &str = "app_endpoints";
    Ok(AppEndpoint {
        id: row.i64(T, "id")?,
        portal: portal_from(T, row.i64(T, "portal_id")?)?,
        url: row.text(T, "url")?,
        secret: row.text(T, "secret")?,
    })
}

fn inbox_item_from_row(row: &Row) -> Result<InboxItem, StoreError> {
    const T: &str = "inbox";
    Ok(InboxItem {
        id: row.i64(T, "id")?,
        portal: portal_from(T, row.i64(T, "portal_id")?)?,
        identity: row.text(T, "identity")?,
        subscription_type: row.text(T, "subscription_type")?,
        object_type: row
            .opt_text(T, "object_type")?
            .map(|t| parse_object_type(T, &t))
            .transpose()?,
        object_id: parse_hubspot_id(T, "object_id", row.opt_text(T, "object_id")?)?,
        occurred_at: row.i64(T, "occurred_at")?,
        payload: row.json(T, "payload")?,
        received_at: row.i64(T, "received_at")?,
        attempts: count_u32(row.i64(T, "attempts")?),
    })
}

/// Groups claimed outbox items per record, oldest record first.
fn coalesce_claims(rows: Vec<Row>) -> Result<Vec<OutboxClaim>, StoreError> {
    const T: &str = "outbox";
    let mut claims: Vec<(i64, OutboxClaim)> = Vec::new();
    let mut index: BTreeMap<(ObjectType, i64), usize> = BTreeMap::new();
    let mut items = Vec::with_capacity(rows.len());
    for row in &rows {
        items.push((
            row.i64(T, "id")?,
            parse_object_type(T, &row.text(T, "object_type")?)?,
            row.i64(T, "local_id")?,
            row.text(T, "op")?,
            row.opt_text(T, "hubspot_id")?,
            row.i64(T, "captured_at")?,
            row.i64(T, "attempts")?,
        ));
    }
    items.sort_by_key(|item| item.0);
    for (id, object_type, local_id, op, hubspot_id, captured_at, attempts) in items {
        let op: OutboxOp = op
            .parse()
            .map_err(|e: String| StoreError::corrupt(T, "op", e))?;
        let hubspot_id = parse_hubspot_id(T, "hubspot_id", hubspot_id)?;
        match index.get(&(object_type, local_id)) {
            Some(&i) => {
                let claim = &mut claims[i].1;
                claim.op = op;
                claim.max_item_id = id;
                claim.items += 1;
                claim.hubspot_id = hubspot_id.or(claim.hubspot_id);
                claim.captured_at = claim.captured_at.max(captured_at);
                claim.attempts = claim.attempts.max(count_u32(attempts));
            }
            None => {
                index.insert((object_type, local_id), claims.len());
                claims.push((
                    id,
                    OutboxClaim {
                        object_type,
                        local_id: LocalId(local_id),
                        op,
                        max_item_id: id,
                        items: 1,
                        hubspot_id,
                        captured_at,
                        attempts: count_u32(attempts),
                    },
                ));
            }
        }
    }
    Ok(claims.into_iter().map(|(_, c)| c).collect())
}

/// JSON text of a value the store keeps as JSON (`base`, `base_ts`, payloads).
fn json_text(
    value: &impl serde::Serialize,
    table: &'static str,
    column: &str,
) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| StoreError::corrupt(table, column, e.to_string()))
}

/// A batch of acknowledgements, one row per record (the last ack of a record wins; its items
/// are removed up to the highest id acknowledged), written as multi-row statements.
struct AckBatch {
    /// Outbox items to remove: object type, local id, up to which item id.
    items: Vec<(ObjectType, LocalId, i64)>,
    /// Sync states to record.
    written: Vec<AckWritten>,
    /// Sync states to remove.
    deleted: Vec<(ObjectType, LocalId)>,
}

/// The sync state an [`AckOutcome::Written`] records, its JSON serialised once.
struct AckWritten {
    /// The record's sync state already holds `hubspot_id`: no other state to free it from.
    id_recorded: bool,
    object_type: ObjectType,
    local_id: LocalId,
    hubspot_id: String,
    base: String,
    base_ts: String,
    fp_sent: String,
    origin: Option<String>,
    remote_updated_at: Option<Millis>,
}

impl AckBatch {
    /// `id_recorded`: the records whose sync state already holds the HubSpot id acknowledged
    /// (read in the same transaction), so that no other row's state can hold it.
    fn new(
        acks: Vec<OutboundAck>,
        id_recorded: &BTreeSet<(ObjectType, LocalId)>,
    ) -> Result<Self, StoreError> {
        let mut last: BTreeMap<(ObjectType, LocalId), (i64, AckOutcome)> = BTreeMap::new();
        for ack in acks {
            let key = (ack.range.object_type, ack.range.local_id);
            let up_to = last.get(&key).map_or(ack.range.up_to_item_id, |(u, _)| {
                (*u).max(ack.range.up_to_item_id)
            });
            last.insert(key, (up_to, ack.outcome));
        }
        let mut batch = AckBatch {
            items: Vec::with_capacity(last.len()),
            written: Vec::with_capacity(last.len()),
            deleted: Vec::new(),
        };
        for ((object_type, local_id), (up_to, outcome)) in last {
            batch.items.push((object_type, local_id, up_to));
            match outcome {
                AckOutcome::Written {
                    hubspot_id,
                    base,
                    base_ts,
                    fp_sent,
                    origin,
                    remote_updated_at,
                    written_fields: _,
                } => batch.written.push(AckWritten {
                    id_recorded: id_recorded.contains(&(object_type, local_id)),
                    object_type,
                    local_id,
                    hubspot_id: hubspot_id.to_string(),
                    base: json_text(&base, "sync_state", "base")?,
                    base_ts: json_text(&base_ts, "sync_state", "base_ts")?,
                    fp_sent: fp_sent.to_hex(),
                    origin,
                    remote_updated_at,
                }),
                AckOutcome::Deleted => batch.deleted.push((object_type, local_id)),
            }
        }
        Ok(batch)
    }

    /// One multi-row upsert of sync states; `sets_id`: whether an existing state's
    /// `hubspot_id` is overwritten (left out of the update when it is known to be the same).
    fn upsert_states(
        dialect: Dialect,
        portal: PortalId,
        now: Millis,
        rows: &[&AckWritten],
        sets_id: bool,
    ) -> (Sql, Vec<Arg>) {
        let json = if dialect == Dialect::Sqlite {
            ""
        } else {
            "::jsonb"
        };
        let mut s = Statement::new(dialect);
        s.push(
            "INSERT INTO sync_state (portal_id, object_type, local_id, hubspot_id, base, \
             base_ts, fp_sent, last_origin, remote_updated_at, synced_at) SELECT ",
        );
        s.bind(pid(portal)).push(&format!(
            ", j.column1, j.column2, j.column3, j.column4{json}, j.column5{json}, \
             j.column6, j.column7, j.column8, "
        ));
        s.bind(int(now)).push(" FROM (VALUES ");
        s.values(rows.iter().map(|w| {
            [
                ty(w.object_type),
                lid(w.local_id),
                w.hubspot_id.as_str().into(),
                w.base.as_str().into(),
                w.base_ts.as_str().into(),
                w.fp_sent.as_str().into(),
                w.origin.clone().into(),
                Arg::Int(w.remote_updated_at),
            ]
        }));
        // `WHERE true` tells SQLite's parser the ON CONFLICT is the upsert's, not a join's.
        s.push(") AS j WHERE true ON CONFLICT (portal_id, object_type, local_id) DO UPDATE SET ");
        if sets_id {
            s.push("hubspot_id = excluded.hubspot_id, ");
        }
        s.push(
            "base = excluded.base, base_ts = excluded.base_ts, fp_sent = excluded.fp_sent, \
             last_origin = excluded.last_origin, \
             remote_updated_at = coalesce(excluded.remote_updated_at, sync_state.remote_updated_at), \
             synced_at = excluded.synced_at",
        );
        s.finish()
    }

    /// The statements that record the batch, in order: remove the acknowledged outbox items;
    /// free the HubSpot ids another row's stale sync state still claims (the unique index
    /// allows one); upsert the sync states; write new HubSpot ids to the app rows; remove the
    /// sync states of deleted records. On SQLite, `CROSS JOIN` and the unary `+` keep the
    /// `VALUES` rows the outer loop, so each row is an index lookup rather than a scan of the
    /// portal's rows.
    fn statements(&self, dialect: Dialect, portal: PortalId, now: Millis) -> Vec<(Sql, Vec<Arg>)> {
        let sqlite = dialect == Dialect::Sqlite;
        let mut out = Vec::new();
        for range in batch::chunks(self.items.len(), 3, 1) {
            let mut s = Statement::new(dialect);
            s.push(if sqlite {
                "DELETE FROM outbox WHERE id IN (SELECT o.id FROM (VALUES "
            } else {
                "DELETE FROM outbox o USING (VALUES "
            });
            s.values(
                self.items[range]
                    .iter()
                    .map(|(t, l, u)| [ty(*t), lid(*l), int(*u)]),
            );
            s.push(if sqlite {
                ") AS j CROSS JOIN outbox AS o WHERE o.portal_id = "
            } else {
                ") AS j WHERE o.portal_id = "
            });
            s.bind(pid(portal)).push(
                " AND o.object_type = j.column1 AND o.local_id = j.column2 AND o.id <= j.column3",
            );
            if sqlite {
                s.push(")");
            }
            out.push(s.finish());
        }
        let new_ids: Vec<&AckWritten> = self.written.iter().filter(|w| !w.id_recorded).collect();
        for range in batch::chunks(new_ids.len(), 3, 1) {
            let mut s = Statement::new(dialect);
            s.push(if sqlite {
                "DELETE FROM sync_state WHERE rowid IN (SELECT s.rowid FROM (VALUES "
            } else {
                "DELETE FROM sync_state s USING (VALUES "
            });
            s.values(new_ids[range].iter().map(|w| {
                [
                    ty(w.object_type),
                    lid(w.local_id),
                    w.hubspot_id.clone().into(),
                ]
            }));
            s.push(if sqlite {
                ") AS j CROSS JOIN sync_state AS s WHERE s.portal_id = "
            } else {
                ") AS j WHERE s.portal_id = "
            });
            s.bind(pid(portal)).push(
                " AND s.object_type = j.column1 AND s.hubspot_id = j.column3 \
                 AND s.local_id <> j.column2",
            );
            if sqlite {
                s.push(")");
            }
            out.push(s.finish());
        }
        // The sync states: an upsert for the records whose state gains its HubSpot id (a
        // create, or a state that held another id), and the same upsert without touching
        // `hubspot_id` (nor its unique index) for the states that already hold it.
        let (recorded, new_ids): (Vec<&AckWritten>, Vec<&AckWritten>) =
            self.written.iter().partition(|w| w.id_recorded);
        for (rows, sets_id) in [(new_ids, true), (recorded, false)] {
            for range in batch::chunks(rows.len(), 8, 2) {
                out.push(Self::upsert_states(
                    dialect,
                    portal,
                    now,
                    &rows[range],
                    sets_id,
                ));
            }
        }
        for object_type in ObjectType::ALL {
            let written: Vec<&AckWritten> = self
                .written
                .iter()
                .filter(|w| w.object_type == object_type)
                .collect();
            let table = schema::table(object_type);
            for range in batch::chunks(written.len(), 2, 1) {
                let mut s = Statement::new(dialect);
                s.push(&format!(
                    "UPDATE {table} SET hubspot_id = j.column2 FROM (VALUES "
                ));
                s.values(
                    written[range]
                        .iter()
                        .map(|w| [lid(w.local_id), w.hubspot_id.clone().into()]),
                );
                s.push(&format!(
                    ") AS j WHERE {}{table}.portal_id = ",
                    if sqlite { "+" } else { "" }
                ));
                s.bind(pid(portal)).push(&format!(
                    " AND {table}.id = j.column1 AND {table}.hubspot_id IS DISTINCT FROM j.column2"
                ));
                out.push(s.finish());
            }
        }
        for range in batch::chunks(self.deleted.len(), 2, 1) {
            let mut s = Statement::new(dialect);
            s.push(if sqlite {
                "DELETE FROM sync_state WHERE rowid IN (SELECT s.rowid FROM (VALUES "
            } else {
                "DELETE FROM sync_state s USING (VALUES "
            });
            s.values(self.deleted[range].iter().map(|(t, l)| [ty(*t), lid(*l)]));
            s.push(if sqlite {
                ") AS j CROSS JOIN sync_state AS s WHERE s.portal_id = "
            } else {
                ") AS j WHERE s.portal_id = "
            });
            s.bind(pid(portal))
                .push(" AND s.object_type = j.column1 AND s.local_id = j.column2");
            if sqlite {
                s.push(")");
            }
            out.push(s.finish());
        }
        out
    }
}

#[async_trait]
impl<B: Backend> Store for SqlStore<B> {
    fn backend(&self) -> &'static str {
        B::NAME
    }

    async fn close(&self) {
        self.db.close().await;
    }

    // ----- portals -------------------------------------------------------------------------

    async fn upsert_portal(&self, portal: &Portal) -> Result<(), StoreError> {
        self.write(
            "INSERT INTO portals (portal_id, name, app_id, auth, status, status_reason, config, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (portal_id) DO UPDATE SET name = excluded.name, \
             app_id = excluded.app_id, auth = excluded.auth, config = excluded.config",
            vec![
                pid(portal.portal_id),
                portal.name.as_str().into(),
                Arg::Int(portal.app_id.map(|a| i64::try_from(a.get()).unwrap_or(i64::MAX))),
                json_arg(portal.auth.0.clone()),
                portal.status.as_str().into(),
                Arg::Text(portal.status_reason.clone()),
                json_arg(portal.config.clone()),
                int(portal.created_at),
            ],
        )
        .await?;
        Ok(())
    }

    async fn get_portal(&self, portal: PortalId) -> Result<Option<Portal>, StoreError> {
        self.read_one(
            "SELECT * FROM portals WHERE portal_id = $1",
            vec![pid(portal)],
        )
        .await?
        .map(|row| portal_from_row(&row))
        .transpose()
    }

    async fn list_portals(&self) -> Result<Vec<Portal>, StoreError> {
        self.read("SELECT * FROM portals ORDER BY portal_id", Vec::new())
            .await?
            .iter()
            .map(portal_from_row)
            .collect()
    }

    async fn set_portal_auth(
        &self,
        portal: PortalId,
        auth: &PortalAuth,
    ) -> Result<bool, StoreError> {
        let n = self
            .write(
                "UPDATE portals SET auth = $2 WHERE portal_id = $1",
                vec![pid(portal), json_arg(auth.0.clone())],
            )
            .await?;
        Ok(n > 0)
    }

    async fn set_portal_status(
        &self,
        portal: PortalId,
        status: PortalStatus,
        reason: Option<&str>,
    ) -> Result<bool, StoreError> {
        let n = self
            .write(
                "UPDATE portals SET status = $2, status_reason = $3 WHERE portal_id = $1",
                vec![
                    pid(portal),
                    status.as_str().into(),
                    Arg::Text(reason.map(str::to_owned)),
                ],
            )
            .await?;
        tracing::info!(portal = %portal, status = status.as_str(), reason = ?reason, "portal status set");
        Ok(n > 0)
    }

    async fn delete_portal(&self, portal: PortalId) -> Result<bool, StoreError> {
        const DATA: [&str; 14] = [
            "DELETE FROM contacts WHERE portal_id = $1",
            "DELETE FROM companies WHERE portal_id = $1",
            "DELETE FROM deals WHERE portal_id = $1",
            "DELETE FROM outbox WHERE portal_id = $1",
            "DELETE FROM inbox WHERE portal_id = $1",
            "DELETE FROM sync_state WHERE portal_id = $1",
            "DELETE FROM id_aliases WHERE portal_id = $1",
            "DELETE FROM dead_letters WHERE portal_id = $1",
            "DELETE FROM conflicts WHERE portal_id = $1",
            "DELETE FROM cursors WHERE portal_id = $1",
            "DELETE FROM counters WHERE portal_id = $1",
            "DELETE FROM app_deliveries WHERE portal_id = $1",
            "DELETE FROM app_endpoints WHERE portal_id = $1",
            "DELETE FROM leases WHERE portal_id = $1",
        ];
        let mut tx = self.db.begin().await?;
        B::start_apply(&mut tx).await?;
        for sql in DATA {
            B::exec(&mut tx, Sql::Static(sql), vec![pid(portal)]).await?;
        }
        let n = B::exec(
            &mut tx,
            Sql::Static("DELETE FROM portals WHERE portal_id = $1"),
            vec![pid(portal)],
        )
        .await?;
        B::end_apply(&mut tx).await?;
        B::commit(tx).await?;
        tracing::info!(portal = %portal, "portal and its data deleted");
        Ok(n > 0)
    }

    // ----- records -------------------------------------------------------------------------

    async fn get_record(
        &self,
        portal: PortalId,
        object_type: ObjectType,
        local_id: LocalId,
    ) -> Result<Option<LocalRecord>, StoreError> {
        let sql = format!("{} AND id = $2", Self::select_records(object_type));
        self.read_one(Sql::Built(sql), vec![pid(portal), lid(local_id)])
            .await?
            .map(|row| schema::record_from_row(object_type, row))
            .transpose()
    }

    async fn get_records(
        &self,
        portal: PortalId,
        object_type: ObjectType,
        local_ids: &[LocalId],
    ) -> Result<Vec<LocalRecord>, StoreError> {
        let mut out = Vec::with_capacity(local_ids.len());
        for chunk in local_ids.chunks(500) {
            let mut binder = Binder::default();
            binder.bind(pid(portal));
            let ids = batch::id_list(B::DIALECT, &mut binder, chunk.iter().map(|id| id.get()));
            let sql = format!(
                "{} AND id IN {ids} ORDER BY id",
                Self::select_records(object_type)
            );
            out.extend(self.read_records(object_type, sql, binder.args).await?);
        }
        out.sort_by_key(|r| r.local_id);
        Ok(out)
    }

    async fn find_by_hubspot_id(
        &self,
        portal: PortalId,
        object_type: ObjectType,
        hubspot_id: HubspotId,
    ) -> Result<Option<LocalRecord>, StoreError> {
        let hubspot_id = self.resolve_alias(portal, object_type, hubspot_id).await?;
        let sql = format!(
            "{} AND hubspot_id = $2 ORDER BY (deleted_at IS NOT NULL), id LIMIT 1",
            Self::select_records(object_type)
        );
        self.read_one(Sql::Built(sql), vec![pid(portal), hid(hubspot_id)])
            .await?
            .map(|row| schema::record_from_row(object_type, row))
            .transpose()
    }

    async fn find_by_hubspot_ids(
        &self,
        portal: PortalId,
        object_type: ObjectType,
        hubspot_ids: &[HubspotId],
    ) -> Result<BTreeMap<HubspotId, LocalRecord>, StoreError> {
        let mut found = BTreeMap::new();
        for chunk in hubspot_ids.chunks(500) {
            let (sql, args) = Self::aliases_of(portal, object_type, chunk);
            let resolved = Self::resolved(chunk, &self.read(sql, args).await?)?;
            let mut binder = Binder::default();
            binder.bind(pid(portal));
            let targets: std::collections::BTreeSet<HubspotId> =
                resolved.iter().map(|(_, to)| *to).collect();
            let placeholders: Vec<String> =
                targets.iter().map(|id| binder.bind(hid(*id))).collect();
            let select = format!(
                "{} AND hubspot_id IN ({})",
                Self::select_records(object_type),
                placeholders.join(", ")
            );
            // In id order: the first live row of each id wins, else its first deleted one.
            let mut holder: BTreeMap<HubspotId, LocalRecord> = BTreeMap::new();
            for record in self.read_records(object_type, select, binder.args).await? {
                let Some(id) = record.hubspot_id else {
                    continue;
                };
                match holder.get(&id) {
                    Some(held) if !held.deleted || record.deleted => {}
                    _ => {
                        holder.insert(id, record);
                    }
                }
            }
            for (asked, to) in resolved {
                if let Some(record) = holder.get(&to) {
                    found.insert(asked, record.clone());
                }
            }
        }
        Ok(found)
    }

    async fn find_by_key(
        &self,
        portal: PortalId,
        object_type: ObjectType,
        field: &str,
        value: &Value,
    ) -> Result<Vec<LocalRecord>, StoreError> {
        let mut sql = format!(
            "{} AND deleted_at IS NULL",
            Self::select_records(object_type)
        );
        let mut binder = Binder::default();
        binder.bind(pid(portal));
        match (schema::column(object_type, field), value) {
            (Some(column), Value::String(s)) if column.kind == Kind::List => {
                let p = binder.bind(Arg::Text(Some(s.to_lowercase())));
                let condition = match B::DIALECT {
                    Dialect::Sqlite => format!(
                        " AND EXISTS (SELECT 1 FROM json_each({}) WHERE lower(json_each.value) = {p})",
                        schema::json_list(B::DIALECT, column.name)
                    ),
                    Dialect::Postgres => format!(
                        " AND EXISTS (SELECT 1 FROM jsonb_array_elements_text({}) e WHERE lower(e) = {p})",
                        schema::json_list(B::DIALECT, column.name)
                    ),
                };
                sql.push_str(&condition);
            }
            (Some(column), Value::String(s)) if column.kind == Kind::Text => {
                let p = binder.bind(Arg::Text(Some(s.to_lowercase())));
                sql.push_str(&format!(" AND lower({}) = {p}", column.name));
            }
            _ => {
                let filter = Filter::new(field, FilterOp::Eq, value.clone());
                schema::push_filters(B::DIALECT, object_type, &[filter], &mut sql, &mut binder)?;
            }
        }
        sql.push_str(" ORDER BY id LIMIT 10");
        self.read_records(object_type, sql, binder.args).await
    }

    async fn list_records(
        &self,
        portal: PortalId,
        object_type: ObjectType,
        after: Option<LocalId>,
        limit: u32,
        filters: &[Filter],
    ) -> Result<Vec<LocalRecord>, StoreError> {
        let mut sql = Self::select_records(object_type);
        let mut binder = Binder::default();
        binder.bind(pid(portal));
        if let Some(after) = after {
            let p = binder.bind(lid(after));
            sql.push_str(&format!(" AND id > {p}"));
        }
        schema::push_filters(B::DIALECT, object_type, filters, &mut sql, &mut binder)?;
        let p = binder.bind(int(i64::from(limit)));
        sql.push_str(&format!(" ORDER BY id LIMIT {p}"));
        // Past the keyset and the deleted marker, a filter may make the walk to `limit` rows
        // scan the table.
        let rows = if filters.iter().any(|f| f.field != "deleted_at") {
            self.db.read_unbounded(Sql::Built(sql), binder.args).await?
        } else {
            self.read(Sql::Built(sql), binder.args).await?
        };
        let mut records = rows
            .into_iter()
            .map(|row| schema::record_from_row(object_type, row))
            .collect::<Result<Vec<_>, _>>()?;
        records.sort_by_key(|r| r.local_id);
        Ok(records)
    }

    async fn count_records(
        &self,
        portal: PortalId,
        object_type: ObjectType,
        filters: &[Filter],
    ) -> Result<u64, StoreError> {
        let mut sql = format!(
            "SELECT count(*) AS n FROM {} WHERE portal_id = $1",
            schema::table(object_type)
        );
        let mut binder = Binder::default();
        binder.bind(pid(portal));
        schema::push_filters(B::DIALECT, object_type, filters, &mut sql, &mut binder)?;
        let row = first(self.db.read_unbounded(Sql::Built(sql), binder.args).await?);
        let n = match row {
            Some(row) => row.i64("count", "n")?,
            None => 0,
        };
        Ok(u64::try_from(n).unwrap_or(0))
    }

    async fn insert_record(
        &self,
        portal: PortalId,
        object_type: ObjectType,
        fields: &FieldMap,
    ) -> Result<LocalRecord, StoreError> {
        let changes: Changes = fields
            .iter()
            .map(|(k, v)| (k.to_owned(), v.clone()))
            .collect();
        let mut tx = self.db.begin().await?;
        let id = Self::insert_row(&mut tx, portal, object_type, None, &changes, now_ms()).await?;
        let record = Self::load_record(&mut tx, portal, object_type, id).await?;
        B::commit(tx).await?;
        record.ok_or_else(|| StoreError::corrupt("insert", "id", "inserted row not found"))
    }

    async fn update_record(
        &self,
        portal: PortalId,
        object_type: ObjectType,
        local_id: LocalId,
        changes: &Changes,
    ) -> Result<Option<LocalRecord>, StoreError> {
        let mut tx = self.db.begin().await?;
        let Some(current) = Self::load_record(&mut tx, portal, object_type, local_id).await? else {
            return Ok(None);
        };
        Self::update_row(
            &mut tx,
            portal,
            object_type,
            &current,
            None,
            changes,
            now_ms(),
        )
        .await?;
        let record = Self::load_record(&mut tx, portal, object_type, local_id).await?;
        B::commit(tx).await?;
        Ok(record)
    }

    async fn delete_record(
        &self,
        portal: PortalId,
        object_type: ObjectType,
        local_id: LocalId,
    ) -> Result<bool, StoreError> {
        let sql = format!(
            "UPDATE {} SET deleted_at = $1, updated_at = $1 WHERE portal_id = $2 AND id = $3 AND deleted_at IS NULL",
            schema::table(object_type)
        );
        let n = self
            .write(
                Sql::Built(sql),
                vec![int(now_ms()), pid(portal), lid(local_id)],
            )
            .await?;
        Ok(n > 0)
    }

    // ----- applying HubSpot's state --------------------------------------------------------

    async fn apply_inbound(
        &self,
        portal: PortalId,
        ops: Vec<ApplyOp>,
        done_inbox_ids: &[i64],
        fence: Option<Fence>,
    ) -> Result<ApplyResult, StoreError> {
        let now = now_ms();
        let mut result = ApplyResult {
            local_ids: Vec::with_capacity(ops.len()),
        };
        let mut tx = self.db.begin().await?;
        Self::check_preconditions(&mut tx, portal, &ops).await?;
        B::start_apply(&mut tx).await?;
        for op in &ops {
            let local_id = match op {
                ApplyOp::Require(_) => None,
                ApplyOp::Upsert(upsert) => Self::apply_upsert(&mut tx, portal, upsert, now).await?,
                ApplyOp::Delete {
                    object_type,
                    hubspot_id,
                } => Self::apply_delete(&mut tx, portal, *object_type, *hubspot_id, now).await?,
                ApplyOp::Merge {
                    object_type,
                    survivor,
                    merged,
                } => {
                    Self::apply_merge(&mut tx, portal, *object_type, *survivor, merged, now).await?
                }
                ApplyOp::Conflicts {
                    object_type,
                    local_id,
                    hubspot_id,
                    conflicts,
                } => {
                    Self::insert_conflicts(
                        &mut tx,
                        portal,
                        *object_type,
                        *local_id,
                        *hubspot_id,
                        conflicts,
                        now,
                    )
                    .await?;
                    *local_id
                }
                ApplyOp::Counter { name, delta } => {
                    Self::add_counter_tx(&mut tx, portal, name, *delta).await?;
                    None
                }
                ApplyOp::Enqueue {
                    object_type,
                    local_id,
                    op,
                } => {
                    Self::enqueue_tx(&mut tx, portal, *object_type, *local_id, *op, now).await?;
                    Some(*local_id)
                }
                ApplyOp::NotifyApp { payload } => {
                    Self::enqueue_app_event_tx(&mut tx, portal, payload).await?;
                    None
                }
                ApplyOp::SetCursor { name, value } => {
                    Self::set_cursor_tx(&mut tx, portal, name, value).await?;
                    None
                }
            };
            result.local_ids.push(local_id);
        }
        for chunk in done_inbox_ids.chunks(500) {
            let mut binder = Binder::default();
            binder.bind(pid(portal));
            let placeholders: Vec<String> = chunk.iter().map(|id| binder.bind(int(*id))).collect();
            let sql = format!(
                "DELETE FROM inbox WHERE portal_id = $1 AND id IN ({})",
                placeholders.join(", ")
            );
            B::exec(&mut tx, Sql::Built(sql), binder.args).await?;
        }
        B::end_apply(&mut tx).await?;
        Self::commit_fenced(tx, portal, fence).await?;
        Ok(result)
    }

    // ----- outbox --------------------------------------------------------------------------

    async fn enqueue_outbox(
        &self,
        portal: PortalId,
        object_type: ObjectType,
        local_id: LocalId,
        op: OutboxOp,
    ) -> Result<i64, StoreError> {
        let mut tx = self.db.begin().await?;
        let id = Self::enqueue_tx(&mut tx, portal, object_type, local_id, op, now_ms()).await?;
        B::commit(tx).await?;
        Ok(id)
    }

    async fn claim_outbox(
        &self,
        portal: PortalId,
        limit: u32,
        lease: Duration,
        worker: &str,
    ) -> Result<Vec<OutboxClaim>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let now = now_ms();
        let until = now.saturating_add(millis(lease));
        let mut tx = self.db.begin().await?;
        if B::DIALECT == Dialect::Postgres {
            // One claimer per portal at a time, so that a record's items are never split
            // between two workers (SQLite's one writer serialises claims already).
            B::exec(
                &mut tx,
                Sql::Static("SELECT pg_advisory_xact_lock(hashtextextended('hubsync_outbox:' || $1::text, 0))"),
                vec![pid(portal)],
            )
            .await?;
        }
        let rows = Self::claim_walk(&mut tx, portal, now, until, limit, worker).await?;
        B::commit(tx).await?;
        let claims = coalesce_claims(rows)?;
        tracing::debug!(portal = %portal, worker, records = claims.len(), "claimed outbox");
        Ok(claims)
    }

    async fn ack_outbound(
        &self,
        portal: PortalId,
        acks: Vec<OutboundAck>,
        fence: Option<Fence>,
    ) -> Result<(), StoreError> {
        if acks.is_empty() && fence.is_none() {
            return Ok(());
        }
        let now = now_ms();
        let mut tx = self.db.begin().await?;
        let (acks, id_recorded) = Self::overlay_written_fields(&mut tx, portal, acks).await?;
        let batch = AckBatch::new(acks, &id_recorded)?;
        B::start_apply(&mut tx).await?;
        // A few multi-row statements per batch, whatever its size.
        for (sql, args) in batch.statements(B::DIALECT, portal, now) {
            B::exec(&mut tx, sql, args).await?;
        }
        B::end_apply(&mut tx).await?;
        Self::commit_fenced(tx, portal, fence).await?;
        Ok(())
    }

    async fn fail_outbound(
        &self,
        portal: PortalId,
        failures: Vec<OutboundFailure>,
        fence: Option<Fence>,
    ) -> Result<(), StoreError> {
        let now = now_ms();
        let mut tx = self.db.begin().await?;
        for failure in &failures {
            let range = failure.range;
            let record_args = vec![
                pid(portal),
                ty(range.object_type),
                lid(range.local_id),
                int(range.up_to_item_id),
            ];
            if let Some(retry_at) = failure.retry_at {
                let mut args = record_args;
                args.push(int(retry_at));
                B::exec(
                    &mut tx,
                    Sql::Static(
                        "UPDATE outbox SET locked_until = NULL, locked_by = NULL, not_before = $5 \
                         WHERE portal_id = $1 AND object_type = $2 AND local_id = $3 AND id <= $4",
                    ),
                    args,
                )
                .await?;
                tracing::info!(portal = %portal, object_type = %range.object_type, local_id = %range.local_id,
                    retry_at, reason = %failure.reason, "outbound push rescheduled");
                continue;
            }
            let rows = B::fetch(
                &mut tx,
                Sql::Static(
                    "SELECT op, hubspot_id, attempts FROM outbox \
                     WHERE portal_id = $1 AND object_type = $2 AND local_id = $3 AND id <= $4 ORDER BY id",
                ),
                record_args.clone(),
            )
            .await?;
            let mut op = OutboxOp::Upsert.as_str().to_owned();
            let mut hubspot_id = None;
            let mut attempts = 0;
            for row in &rows {
                op = row.text("outbox", "op")?;
                hubspot_id = row.opt_text("outbox", "hubspot_id")?.or(hubspot_id);
                attempts = attempts.max(row.i64("outbox", "attempts")?);
            }
            let letter = NewDeadLetter {
                source: DeadLetterSource::Outbound,
                object_type: Some(range.object_type),
                local_id: Some(range.local_id),
                hubspot_id: parse_hubspot_id("outbox", "hubspot_id", hubspot_id)?,
                reason: failure.reason.clone(),
                category: failure.category.clone(),
                payload: json!({ "op": op, "detail": failure.payload }),
                attempts: count_u32(attempts),
            };
            Self::insert_dead_letter_tx(&mut tx, portal, &letter, now).await?;
            B::exec(
                &mut tx,
                Sql::Static(
                    "DELETE FROM outbox WHERE portal_id = $1 AND object_type = $2 AND local_id = $3 AND id <= $4",
                ),
                record_args,
            )
            .await?;
        }
        Self::commit_fenced(tx, portal, fence).await?;
        Ok(())
    }

    async fn release_outbox(
        &self,
        portal: PortalId,
        ranges: &[ItemRange],
        fence: Option<Fence>,
    ) -> Result<(), StoreError> {
        let mut tx = self.db.begin().await?;
        for range in ranges {
            B::exec(
                &mut tx,
                Sql::Static(
                    "UPDATE outbox SET locked_until = NULL, locked_by = NULL, \
                     attempts = CASE WHEN attempts > 0 THEN attempts - 1 ELSE 0 END \
                     WHERE portal_id = $1 AND object_type = $2 AND local_id = $3 AND id <= $4 \
                     AND locked_until IS NOT NULL",
                ),
                vec![
                    pid(portal),
                    ty(range.object_type),
                    lid(range.local_id),
                    int(range.up_to_item_id),
                ],
            )
            .await?;
        }
        Self::commit_fenced(tx, portal, fence).await?;
        Ok(())
    }

    async fn ensure_hubsync_id(
        &self,
        portal: PortalId,
        object_type: ObjectType,
        local_id: LocalId,
    ) -> Result<String, StoreError> {
        let fresh = uuid::Uuid::now_v7().simple().to_string();
        let mut tx = self.db.begin().await?;
        B::exec(
            &mut tx,
            Sql::Static(
                "INSERT INTO sync_state (portal_id, object_type, local_id, hubsync_id) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (portal_id, object_type, local_id) \
                 DO UPDATE SET hubsync_id = coalesce(sync_state.hubsync_id, excluded.hubsync_id)",
            ),
            vec![pid(portal), ty(object_type), lid(local_id), fresh.into()],
        )
        .await?;
        let rows = B::fetch(
            &mut tx,
            Sql::Static(
                "SELECT hubsync_id FROM sync_state WHERE portal_id = $1 AND object_type = $2 AND local_id = $3",
            ),
            vec![pid(portal), ty(object_type), lid(local_id)],
        )
        .await?;
        B::commit(tx).await?;
        first(rows)
            .ok_or_else(|| StoreError::corrupt("sync_state", "hubsync_id", "row vanished"))?
            .text("sync_state", "hubsync_id")
    }

    async fn portals_with_pending_outbox(&self) -> Result<Vec<PortalId>, StoreError> {
        let rows = self
            .read(
                "SELECT DISTINCT portal_id FROM outbox WHERE not_before <= $1 \
                 AND (locked_until IS NULL OR locked_until < $1) ORDER BY portal_id",
                vec![int(now_ms())],
            )
            .await?;
        rows.iter()
            .map(|r| portal_from("outbox", r.i64("outbox", "portal_id")?))
            .collect()
    }

    async fn wait_for_outbox(&self, timeout: Duration) -> Result<bool, StoreError> {
        self.db.wait_for_outbox(timeout).await
    }

    // ----- inbox ---------------------------------------------------------------------------

    async fn insert_inbox(&self, events: &[InboxEvent]) -> Result<InboxInsert, StoreError> {
        if events.is_empty() {
            return Ok(InboxInsert::default());
        }
        // The whole delivery in one transaction: stored entirely or not at all.
        let mut tx = self.db.begin().await?;
        let inserted = Self::insert_inbox_tx(&mut tx, events, now_ms()).await?;
        B::commit(tx).await?;
        let total = events.len() as u64;
        Ok(InboxInsert {
            inserted,
            duplicates: total.saturating_sub(inserted),
        })
    }

    async fn claim_inbox(
        &self,
        portal: PortalId,
        limit: u32,
        lease: Duration,
        worker: &str,
    ) -> Result<Vec<InboxItem>, StoreError> {
        let now = now_ms();
        let mut tx = self.db.begin().await?;
        let rows = B::fetch(
            &mut tx,
            pick::<B>(
                "UPDATE inbox SET locked_by = $2, locked_until = $3, attempts = attempts + 1 \
                 WHERE id IN (SELECT id FROM inbox WHERE portal_id = $1 AND not_before <= $4 \
                 AND (locked_until IS NULL OR locked_until < $4) ORDER BY id LIMIT $5) \
                 RETURNING id, portal_id, identity, subscription_type, object_type, object_id, occurred_at, \
                 payload, received_at, attempts",
                "UPDATE inbox SET locked_by = $2, locked_until = $3, attempts = attempts + 1 \
                 WHERE id IN (SELECT id FROM inbox WHERE portal_id = $1 AND not_before <= $4 \
                 AND (locked_until IS NULL OR locked_until < $4) ORDER BY id LIMIT $5 FOR UPDATE SKIP LOCKED) \
                 RETURNING id, portal_id, identity, subscription_type, object_type, object_id, occurred_at, \
                 payload, received_at, attempts",
            ),
            vec![
                pid(portal),
                worker.into(),
                int(now.saturating_add(millis(lease))),
                int(now),
                int(i64::from(limit)),
            ],
        )
        .await?;
        B::commit(tx).await?;
        let mut items = rows
            .iter()
            .map(inbox_item_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        items.sort_by_key(|i| i.id);
        Ok(items)
    }

    async fn fail_inbox(
        &self,
        portal: PortalId,
        failures: Vec<InboxFailure>,
        fence: Option<Fence>,
    ) -> Result<(), StoreError> {
        let now = now_ms();
        let mut tx = self.db.begin().await?;
        for failure in &failures {
            if let Some(retry_at) = failure.retry_at {
                B::exec(
                    &mut tx,
                    Sql::Static(
                        "UPDATE inbox SET locked_until = NULL, locked_by = NULL, not_before = $3 \
                         WHERE portal_id = $1 AND id = $2",
                    ),
                    vec![pid(portal), int(failure.id), int(retry_at)],
                )
                .await?;
                continue;
            }
            let rows = B::fetch(
                &mut tx,
                Sql::Static("SELECT * FROM inbox WHERE portal_id = $1 AND id = $2"),
                vec![pid(portal), int(failure.id)],
            )
            .await?;
            let Some(row) = first(rows) else { continue };
            let item = inbox_item_from_row(&row)?;
            let letter = NewDeadLetter {
                source: DeadLetterSource::Inbound,
                object_type: item.object_type,
                local_id: None,
                hubspot_id: item.object_id,
                reason: failure.reason.clone(),
                category: failure.category.clone(),
                payload: json!({
                    "identity": item.identity,
                    "subscription_type": item.subscription_type,
                    "object_type": item.object_type,
                    "object_id": item.object_id,
                    "occurred_at": item.occurred_at,
                    "event": item.payload,
                }),
                attempts: item.attempts,
            };
            Self::insert_dead_letter_tx(&mut tx, portal, &letter, now).await?;
            B::exec(
                &mut tx,
                Sql::Static("DELETE FROM inbox WHERE portal_id = $1 AND id = $2"),
                vec![pid(portal), int(failure.id)],
            )
            .await?;
        }
        Self::commit_fenced(tx, portal, fence).await?;
        Ok(())
    }

    async fn release_inbox(
        &self,
        portal: PortalId,
        ids: &[i64],
        fence: Option<Fence>,
    ) -> Result<(), StoreError> {
        let mut tx = self.db.begin().await?;
        for id in ids {
            B::exec(
                &mut tx,
                Sql::Static(
                    "UPDATE inbox SET locked_until = NULL, locked_by = NULL, \
                     attempts = CASE WHEN attempts > 0 THEN attempts - 1 ELSE 0 END \
                     WHERE portal_id = $1 AND id = $2 AND locked_until IS NOT NULL",
                ),
                vec![pid(portal), int(*id)],
            )
            .await?;
        }
        Self::commit_fenced(tx, portal, fence).await?;
        Ok(())
    }

    async fn portals_with_pending_inbox(&self) -> Result<Vec<PortalId>, StoreError> {
        let rows = self
            .read(
                "SELECT DISTINCT portal_id FROM inbox WHERE not_before <= $1 \
                 AND (locked_until IS NULL OR locked_until < $1) ORDER BY portal_id",
                vec![int(now_ms())],
            )
            .await?;
        rows.iter()
            .map(|r| portal_from("inbox", r.i64("inbox", "portal_id")?))
            .collect()
    }

    // ----- sync state ----------------------------------------------------------------------

    async fn get_sync_state(
        &self,
        portal: PortalId,
        object_type: ObjectType,
        local_id: LocalId,
    ) -> Result<Option<SyncState>, StoreError> {
        self.read_one(
            "SELECT * FROM sync_state WHERE portal_id = $1 AND object_type = $2 AND local_id = $3",
            vec![pid(portal), ty(object_type), lid(local_id)],
        )
        .await?
        .map(|row| sync_state_from_row(&row))
        .transpose()
    }

    async fn get_sync_states(
        &self,
        portal: PortalId,
        object_type: ObjectType,
        local_ids: &[LocalId],
    ) -> Result<Vec<SyncState>, StoreError> {
        let mut out = Vec::with_capacity(local_ids.len());
        for chunk in local_ids.chunks(500) {
            let mut binder = Binder::default();
            binder.bind(pid(portal));
            binder.bind(ty(object_type));
            let ids = batch::id_list(B::DIALECT, &mut binder, chunk.iter().map(|id| id.get()));
            let sql = format!(
                "SELECT {} FROM sync_state WHERE portal_id = $1 AND object_type = $2 AND local_id IN {ids}",
                SYNC_STATE_COLUMNS.join(", ")
            );
            for row in self.read(Sql::Built(sql), binder.args).await? {
                out.push(sync_state_from_row(&row)?);
            }
        }
        out.sort_by_key(|s| s.local_id);
        Ok(out)
    }

    async fn get_records_with_sync_states(
        &self,
        portal: PortalId,
        object_type: ObjectType,
        local_ids: &[LocalId],
    ) -> Result<Vec<(LocalRecord, Option<SyncState>)>, StoreError> {
        let records = self.get_records(portal, object_type, local_ids).await?;
        let states = self.get_sync_states(portal, object_type, local_ids).await?;
        Ok(crate::store::pair_with_states(records, states))
    }

    async fn get_sync_state_by_hubspot_id(
        &self,
        portal: PortalId,
        object_type: ObjectType,
        hubspot_id: HubspotId,
    ) -> Result<Option<SyncState>, StoreError> {
        let hubspot_id = self.resolve_alias(portal, object_type, hubspot_id).await?;
        self.read_one(
            "SELECT * FROM sync_state WHERE portal_id = $1 AND object_type = $2 AND hubspot_id = $3",
            vec![pid(portal), ty(object_type), hid(hubspot_id)],
        )
        .await?
        .map(|row| sync_state_from_row(&row))
        .transpose()
    }

    async fn resolve_alias(
        &self,
        portal: PortalId,
        object_type: ObjectType,
        hubspot_id: HubspotId,
    ) -> Result<HubspotId, StoreError> {
        let row = self
            .read_one(
                "SELECT hubspot_id FROM id_aliases WHERE portal_id = $1 AND object_type = $2 AND old_hubspot_id = $3",
                vec![pid(portal), ty(object_type), hid(hubspot_id)],
            )
            .await?;
        match row {
            Some(row) => Ok(parse_hubspot_id(
                "id_aliases",
                "hubspot_id",
                row.opt_text("id_aliases", "hubspot_id")?,
            )?
            .unwrap_or(hubspot_id)),
            None => Ok(hubspot_id),
        }
    }

    // ----- dead letters --------------------------------------------------------------------

    async fn add_dead_letter_fenced(
        &self,
        portal: PortalId,
        letter: &NewDeadLetter,
        fence: Option<Fence>,
    ) -> Result<i64, StoreError> {
        let mut tx = self.db.begin().await?;
        let id = Self::insert_dead_letter_tx(&mut tx, portal, letter, now_ms()).await?;
        Self::commit_fenced(tx, portal, fence).await?;
        Ok(id)
    }

    async fn list_dead_letters(
        &self,
        portal: PortalId,
        before: Option<i64>,
        limit: u32,
    ) -> Result<Vec<DeadLetter>, StoreError> {
        self.read(
            "SELECT * FROM dead_letters WHERE portal_id = $1 AND id < $2 ORDER BY id DESC LIMIT $3",
            vec![
                pid(portal),
                int(before.unwrap_or(i64::MAX)),
                int(i64::from(limit)),
            ],
        )
        .await?
        .iter()
        .map(dead_letter_from_row)
        .collect()
    }

    async fn get_dead_letter(
        &self,
        portal: PortalId,
        id: i64,
    ) -> Result<Option<DeadLetter>, StoreError> {
        self.read_one(
            "SELECT * FROM dead_letters WHERE portal_id = $1 AND id = $2",
            vec![pid(portal), int(id)],
        )
        .await?
        .map(|row| dead_letter_from_row(&row))
        .transpose()
    }

    async fn retry_dead_letter(&self, portal: PortalId, id: i64) -> Result<bool, StoreError> {
        let now = now_ms();
        let mut tx = self.db.begin().await?;
        let rows = B::fetch(
            &mut tx,
            Sql::Static("SELECT * FROM dead_letters WHERE portal_id = $1 AND id = $2"),
            vec![pid(portal), int(id)],
        )
        .await?;
        let Some(row) = first(rows) else {
            return Ok(false);
        };
        let dead = dead_letter_from_row(&row)?;
        let letter = &dead.letter;
        match letter.source {
            DeadLetterSource::Inbound => {
                let payload = &letter.payload;
                let event = InboxEvent {
                    portal,
                    subscription_type: payload["subscription_type"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned(),
                    object_type: letter.object_type,
                    object_id: letter.hubspot_id,
                    property_name: None,
                    occurred_at: payload["occurred_at"].as_i64().unwrap_or(now),
                    event_id: 0,
                    payload: payload["event"].clone(),
                };
                let identity = payload["identity"]
                    .as_str()
                    .map(str::to_owned)
                    .unwrap_or_else(|| event.identity());
                B::exec(
                    &mut tx,
                    Sql::Static(
                        "INSERT INTO inbox (portal_id, identity, subscription_type, object_type, object_id, \
                         occurred_at, payload, received_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
                         ON CONFLICT (portal_id, identity) DO NOTHING",
                    ),
                    vec![
                        pid(portal),
                        identity.into(),
                        event.subscription_type.into(),
                        Arg::Text(event.object_type.map(|t| t.plural().to_owned())),
                        Arg::Text(event.object_id.map(|h| h.to_string())),
                        int(event.occurred_at),
                        json_arg(event.payload),
                        int(now),
                    ],
                )
                .await?;
            }
            DeadLetterSource::Outbound
            | DeadLetterSource::Capture
            | DeadLetterSource::Reconcile => {
                let (Some(object_type), Some(local_id)) = (letter.object_type, letter.local_id)
                else {
                    return Ok(false);
                };
                let op = match letter.payload["op"].as_str() {
                    Some("delete") => OutboxOp::Delete,
                    _ => OutboxOp::Upsert,
                };
                let hubspot_id = letter.hubspot_id.map(|h| h.to_string());
                Self::insert_outbox_item(
                    &mut tx,
                    portal,
                    object_type,
                    local_id,
                    op,
                    hubspot_id,
                    now,
                )
                .await?;
            }
        }
        B::exec(
            &mut tx,
            Sql::Static("DELETE FROM dead_letters WHERE portal_id = $1 AND id = $2"),
            vec![pid(portal), int(id)],
        )
        .await?;
        B::commit(tx).await?;
        tracing::info!(portal = %portal, dead_letter = id, source = letter.source.as_str(), "dead letter re-queued");
        Ok(true)
    }

    async fn drop_dead_letter(&self, portal: PortalId, id: i64) -> Result<bool, StoreError> {
        let n = self
            .write(
                "DELETE FROM dead_letters WHERE portal_id = $1 AND id = $2",
                vec![pid(portal), int(id)],
            )
            .await?;
        Ok(n > 0)
    }

    // ----- conflicts, cursors, counters, stats ---------------------------------------------

    async fn list_conflicts(
        &self,
        portal: PortalId,
        before: Option<i64>,
        limit: u32,
    ) -> Result<Vec<ConflictRecord>, StoreError> {
        self.read(
            "SELECT * FROM conflicts WHERE portal_id = $1 AND id < $2 ORDER BY id DESC LIMIT $3",
            vec![
                pid(portal),
                int(before.unwrap_or(i64::MAX)),
                int(i64::from(limit)),
            ],
        )
        .await?
        .iter()
        .map(conflict_from_row)
        .collect()
    }

    async fn get_cursor(&self, portal: PortalId, name: &str) -> Result<Option<String>, StoreError> {
        match self
            .read_one(
                "SELECT value FROM cursors WHERE portal_id = $1 AND name = $2",
                vec![pid(portal), name.into()],
            )
            .await?
        {
            Some(row) => Ok(Some(row.text("cursors", "value")?)),
            None => Ok(None),
        }
    }

    async fn set_cursor(
        &self,
        portal: PortalId,
        name: &str,
        value: &str,
        fence: Option<Fence>,
    ) -> Result<(), StoreError> {
        let mut tx = self.db.begin().await?;
        Self::set_cursor_tx(&mut tx, portal, name, value).await?;
        Self::commit_fenced(tx, portal, fence).await
    }

    async fn add_counter(
        &self,
        portal: PortalId,
        name: &str,
        delta: i64,
    ) -> Result<(), StoreError> {
        let mut tx = self.db.begin().await?;
        Self::add_counter_tx(&mut tx, portal, name, delta).await?;
        B::commit(tx).await
    }

    async fn counters(&self, portal: PortalId) -> Result<BTreeMap<String, i64>, StoreError> {
        self.read(
            "SELECT name, value FROM counters WHERE portal_id = $1 ORDER BY name",
            vec![pid(portal)],
        )
        .await?
        .iter()
        .map(|row| Ok((row.text("counters", "name")?, row.i64("counters", "value")?)))
        .collect()
    }

    async fn queue_depths(&self, portal: PortalId) -> Result<QueueDepths, StoreError> {
        Ok(QueueDepths {
            outbox: self
                .count(
                    "SELECT count(*) AS n FROM outbox WHERE portal_id = $1",
                    portal,
                )
                .await?,
            inbox: self
                .count(
                    "SELECT count(*) AS n FROM inbox WHERE portal_id = $1",
                    portal,
                )
                .await?,
            dead_letters: self
                .count(
                    "SELECT count(*) AS n FROM dead_letters WHERE portal_id = $1",
                    portal,
                )
                .await?,
            conflicts: self
                .count(
                    "SELECT count(*) AS n FROM conflicts WHERE portal_id = $1",
                    portal,
                )
                .await?,
        })
    }

    // ----- API keys ------------------------------------------------------------------------

    async fn create_api_key(
        &self,
        name: &str,
        key_hash: &str,
        portals: &[PortalId],
    ) -> Result<ApiKey, StoreError> {
        let now = now_ms();
        let portals_json = serde_json::to_value(portals).unwrap_or(Value::Null);
        let mut tx = self.db.begin().await?;
        let rows = B::fetch(
            &mut tx,
            Sql::Static(
                "INSERT INTO api_keys (key_hash, name, portal_ids, created_at) VALUES ($1, $2, $3, $4) RETURNING id",
            ),
            vec![key_hash.into(), name.into(), json_arg(portals_json), int(now)],
        )
        .await?;
        B::commit(tx).await?;
        let id = first(rows)
            .ok_or_else(|| StoreError::corrupt("api_keys", "id", "no id returned"))?
            .i64("api_keys", "id")?;
        Ok(ApiKey {
            id,
            key_hash: key_hash.to_owned(),
            name: name.to_owned(),
            portals: portals.to_vec(),
            created_at: now,
        })
    }

    async fn find_api_key(&self, key_hash: &str) -> Result<Option<ApiKey>, StoreError> {
        self.read_one(
            "SELECT * FROM api_keys WHERE key_hash = $1",
            vec![key_hash.into()],
        )
        .await?
        .map(|row| api_key_from_row(&row))
        .transpose()
    }

    async fn list_api_keys(&self) -> Result<Vec<ApiKey>, StoreError> {
        self.read("SELECT * FROM api_keys ORDER BY id", Vec::new())
            .await?
            .iter()
            .map(api_key_from_row)
            .collect()
    }

    async fn revoke_api_key(&self, id: i64) -> Result<bool, StoreError> {
        Ok(self
            .write("DELETE FROM api_keys WHERE id = $1", vec![int(id)])
            .await?
            > 0)
    }

    // ----- app webhooks --------------------------------------------------------------------

    async fn add_app_endpoint(
        &self,
        portal: PortalId,
        url: &str,
        secret: &str,
    ) -> Result<AppEndpoint, StoreError> {
        let mut tx = self.db.begin().await?;
        let rows = B::fetch(
            &mut tx,
            Sql::Static(
                "INSERT INTO app_endpoints (portal_id, url, secret, created_at) VALUES ($1, $2, $3, $4) RETURNING id",
            ),
            vec![pid(portal), url.into(), secret.into(), int(now_ms())],
        )
        .await?;
        B::commit(tx).await?;
        let id = first(rows)
            .ok_or_else(|| StoreError::corrupt("app_endpoints", "id", "no id returned"))?
            .i64("app_endpoints", "id")?;
        Ok(AppEndpoint {
            id,
            portal,
            url: url.to_owned(),
            secret: secret.to_owned(),
        })
    }

    async fn list_app_endpoints(&self, portal: PortalId) -> Result<Vec<AppEndpoint>, StoreError> {
        self.read(
            "SELECT id, portal_id, url, secret FROM app_endpoints WHERE portal_id = $1 ORDER BY id",
            vec![pid(portal)],
        )
        .await?
        .iter()
        .map(endpoint_from_row)
        .collect()
    }

    async fn remove_app_endpoint(&self, portal: PortalId, id: i64) -> Result<bool, StoreError> {
        let mut tx = self.db.begin().await?;
        B::exec(
            &mut tx,
            Sql::Static("DELETE FROM app_deliveries WHERE portal_id = $1 AND endpoint_id = $2"),
            vec![pid(portal), int(id)],
        )
        .await?;
        let n = B::exec(
            &mut tx,
            Sql::Static("DELETE FROM app_endpoints WHERE portal_id = $1 AND id = $2"),
            vec![pid(portal), int(id)],
        )
        .await?;
        B::commit(tx).await?;
        Ok(n > 0)
    }

    async fn enqueue_app_event(
        &self,
        portal: PortalId,
        payload: &Value,
    ) -> Result<u64, StoreError> {
        let mut tx = self.db.begin().await?;
        let n = Self::enqueue_app_event_tx(&mut tx, portal, payload).await?;
        B::commit(tx).await?;
        Ok(n)
    }

    async fn claim_app_deliveries(
        &self,
        limit: u32,
        lease: Duration,
    ) -> Result<Vec<AppDelivery>, StoreError> {
        let now = now_ms();
        let mut tx = self.db.begin().await?;
        let rows = B::fetch(
            &mut tx,
            pick::<B>(
                "UPDATE app_deliveries SET next_attempt_at = $1 WHERE id IN (SELECT id FROM app_deliveries \
                 WHERE delivered_at IS NULL AND next_attempt_at <= $2 ORDER BY next_attempt_at, id LIMIT $3) \
                 RETURNING id, endpoint_id, payload, attempts",
                "UPDATE app_deliveries SET next_attempt_at = $1 WHERE id IN (SELECT id FROM app_deliveries \
                 WHERE delivered_at IS NULL AND next_attempt_at <= $2 ORDER BY next_attempt_at, id LIMIT $3 \
                 FOR UPDATE SKIP LOCKED) RETURNING id, endpoint_id, payload, attempts",
            ),
            vec![int(now.saturating_add(millis(lease))), int(now), int(i64::from(limit))],
        )
        .await?;
        let mut endpoints: BTreeMap<i64, AppEndpoint> = BTreeMap::new();
        let mut out = Vec::with_capacity(rows.len());
        for row in &rows {
            const T: &str = "app_deliveries";
            let endpoint_id = row.i64(T, "endpoint_id")?;
            let endpoint = match endpoints.get(&endpoint_id) {
                Some(endpoint) => endpoint.clone(),
                None => {
                    let found = B::fetch(
                        &mut tx,
                        Sql::Static(
                            "SELECT id, portal_id, url, secret FROM app_endpoints WHERE id = $1",
                        ),
                        vec![int(endpoint_id)],
                    )
                    .await?;
                    let Some(found) = first(found) else { continue };
                    let endpoint = endpoint_from_row(&found)?;
                    endpoints.insert(endpoint_id, endpoint.clone());
                    endpoint
                }
            };
            out.push(AppDelivery {
                id: row.i64(T, "id")?,
                endpoint,
                payload: row.json(T, "payload")?,
                attempts: count_u32(row.i64(T, "attempts")?),
            });
        }
        B::commit(tx).await?;
        out.sort_by_key(|d| d.id);
        Ok(out)
    }

    async fn complete_app_delivery(&self, id: i64) -> Result<(), StoreError> {
        self.write(
            "UPDATE app_deliveries SET delivered_at = $2 WHERE id = $1",
            vec![int(id), int(now_ms())],
        )
        .await?;
        Ok(())
    }

    async fn retry_app_delivery(&self, id: i64, next_attempt_at: Millis) -> Result<(), StoreError> {
        self.write(
            "UPDATE app_deliveries SET attempts = attempts + 1, next_attempt_at = $2 WHERE id = $1",
            vec![int(id), int(next_attempt_at)],
        )
        .await?;
        Ok(())
    }

    // ----- leases --------------------------------------------------------------------------

    async fn try_acquire_lease(
        &self,
        portal: PortalId,
        owner: &str,
        ttl: Duration,
    ) -> Result<Option<Fence>, StoreError> {
        self.lease_try_acquire(portal, owner, ttl).await
    }

    async fn renew_lease(
        &self,
        portal: PortalId,
        owner: &str,
        fence: Fence,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        self.lease_renew(portal, owner, fence, ttl).await
    }

    async fn release_lease(
        &self,
        portal: PortalId,
        owner: &str,
        fence: Fence,
    ) -> Result<(), StoreError> {
        self.lease_release(portal, owner, fence).await
    }
}
