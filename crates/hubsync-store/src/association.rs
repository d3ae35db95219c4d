//! Association state: the merge base of each record's association fields (`company_id`,
//! `contact_ids`) — the HubSpot ids HubSpot held for the field when it was last synced — and
//! the one transaction that applies association changes from HubSpot to the app tables.
//!
//! Association fields are not HubSpot properties, so they live outside `sync_state.base` (which
//! the property paths replace wholesale), in the `association_state` table (migration 5).

use std::collections::BTreeMap;

use async_trait::async_trait;
use hubsync_core::{Conflict, HubspotId, LocalId, ObjectType, PortalId};
use serde_json::Value;

use crate::db::{Arg, Backend, Cell, Dialect, Row, Sql};
use crate::error::StoreError;
use crate::model::{Fence, Millis, now_ms};
use crate::schema::{self, Binder};
use crate::sql_store::SqlStore;

/// The last synced state of one association field of one record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssociationBase {
    /// The record's type.
    pub object_type: ObjectType,
    /// The app row.
    pub local_id: LocalId,
    /// The association field (`company_id`, `contact_ids`).
    pub field: String,
    /// The associated HubSpot records HubSpot held when last synced, sorted.
    pub targets: Vec<HubspotId>,
    /// When it was recorded (epoch ms).
    pub synced_at: Millis,
}

/// One write of [`AssociationStore::apply_associations`]. None of them is captured into the
/// outbox.
#[derive(Debug, Clone, PartialEq)]
pub enum AssociationOp {
    /// Write an association column of an app row — only if it still holds `expected` (the value
    /// the decision was made on), so an app write racing the apply is never overwritten.
    SetLocal {
        /// The record's type.
        object_type: ObjectType,
        /// The app row.
        local_id: LocalId,
        /// The column (`company_id`, `contact_ids`).
        field: String,
        /// The value the column must still hold (`null` for none, `[]` for an empty list).
        expected: Value,
        /// The new value.
        value: Value,
    },
    /// Record a field's new base.
    SaveBase(AssociationBase),
    /// Record settled conflicts of one record.
    Conflicts {
        /// The record's type.
        object_type: ObjectType,
        /// The app row.
        local_id: LocalId,
        /// The HubSpot record.
        hubspot_id: Option<HubspotId>,
        /// The conflicts, as settled.
        conflicts: Vec<Conflict>,
    },
    /// Queue the record for the outbound worker (its local links must still reach HubSpot).
    Enqueue {
        /// The record's type.
        object_type: ObjectType,
        /// The app row.
        local_id: LocalId,
    },
    /// Add to a durable counter.
    Counter {
        /// The counter name.
        name: String,
        /// The amount.
        delta: i64,
    },
    /// Advance a cursor together with the work it covers.
    SetCursor {
        /// The cursor name.
        name: String,
        /// The new value.
        value: String,
    },
}

/// What [`AssociationStore::apply_associations`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AssociationApplied {
    /// App columns written.
    pub written: u64,
    /// `SetLocal` ops skipped because the app changed the column since it was read.
    pub stale: u64,
}

/// The association part of the store; every [`Store`](crate::Store) implements it.
#[async_trait]
pub trait AssociationStore: Send + Sync {
    /// The stored association bases of some records (every field that has one).
    async fn get_association_bases(
        &self,
        portal: PortalId,
        object_type: ObjectType,
        local_ids: &[LocalId],
    ) -> Result<Vec<AssociationBase>, StoreError>;

    /// Records association bases (after HubSpot accepted a push), in one transaction.
    async fn save_association_bases(
        &self,
        portal: PortalId,
        bases: Vec<AssociationBase>,
    ) -> Result<(), StoreError>;

    /// The live (not deleted) app rows holding these HubSpot ids.
    async fn local_ids_by_hubspot_ids(
        &self,
        portal: PortalId,
        object_type: ObjectType,
        hubspot_ids: &[HubspotId],
    ) -> Result<BTreeMap<HubspotId, LocalId>, StoreError>;

    /// Applies association changes in one transaction, uncaptured, then deletes the inbox
    /// rows `done_inbox_ids` (the events consumed).
    async fn apply_associations(
        &self,
        portal: PortalId,
        ops: Vec<AssociationOp>,
        done_inbox_ids: &[i64],
        fence: Option<Fence>,
    ) -> Result<AssociationApplied, StoreError>;
}

fn pid(portal: PortalId) -> Arg {
    Arg::Int(Some(i64::try_from(portal.get()).unwrap_or(i64::MAX)))
}

fn targets_json(targets: &[HubspotId]) -> Arg {
    let list: Vec<String> = targets.iter().map(|t| t.to_string()).collect();
    Arg::Text(Some(Value::from(list).to_string()))
}

fn parse_targets(text: &str) -> Result<Vec<HubspotId>, StoreError> {
    let list: Vec<String> = serde_json::from_str(text)
        .map_err(|e| StoreError::corrupt("association_state", "targets", e.to_string()))?;
    let mut ids = list
        .iter()
        .map(|s| {
            s.parse::<HubspotId>().map_err(|e| {
                StoreError::corrupt("association_state", "targets", format!("{s}: {e}"))
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    ids.sort();
    ids.dedup();
    Ok(ids)
}

fn base_from_row(row: &Row) -> Result<AssociationBase, StoreError> {
    let object_type = row
        .text("association_state", "object_type")?
        .parse::<ObjectType>()
        .map_err(|e| StoreError::corrupt("association_state", "object_type", e.to_string()))?;
    Ok(AssociationBase {
        object_type,
        local_id: LocalId(row.i64("association_state", "local_id")?),
        field: row.text("association_state", "field")?,
        targets: parse_targets(&row.text("association_state", "targets")?)?,
        synced_at: row.i64("association_state", "synced_at")?,
    })
}

/// A column value as the association comparison sees it: a missing value and an empty list
/// are the same, list order does not matter, numbers compare as integers.
fn normalized(value: &Value) -> Value {
    match value {
        Value::Array(items) if items.is_empty() => Value::Null,
        Value::Array(items) => {
            let mut ids: Vec<i64> = items.iter().filter_map(as_int).collect();
            ids.sort_unstable();
            ids.dedup();
            Value::from(ids)
        }
        Value::String(s) if s.trim().is_empty() => Value::Null,
        other => as_int(other).map_or_else(|| other.clone(), Value::from),
    }
}

fn as_int(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

async fn save_base_tx<B: Backend>(
    tx: &mut B::Tx,
    portal: PortalId,
    base: &AssociationBase,
) -> Result<(), StoreError> {
    B::exec(
        tx,
        Sql::Static(
            "INSERT INTO association_state (portal_id, object_type, local_id, field, targets, synced_at) \
             VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (portal_id, object_type, local_id, field) \
             DO UPDATE SET targets = excluded.targets, synced_at = excluded.synced_at",
        ),
        vec![
            pid(portal),
            base.object_type.plural().into(),
            Arg::Int(Some(base.local_id.get())),
            base.field.as_str().into(),
            targets_json(&base.targets),
            Arg::Int(Some(base.synced_at)),
        ],
    )
    .await?;
    Ok(())
}

async fn check_fence<B: Backend>(
    tx: &mut B::Tx,
    portal: PortalId,
    fence: Option<Fence>,
) -> Result<(), StoreError> {
    let Some(fence) = fence else {
        return Ok(());
    };
    let sql = match B::DIALECT {
        Dialect::Sqlite => "SELECT fence FROM leases WHERE portal_id = $1",
        Dialect::Postgres => "SELECT fence FROM leases WHERE portal_id = $1 FOR SHARE",
    };
    let rows = B::fetch(tx, Sql::Static(sql), vec![pid(portal)]).await?;
    let current = match rows.first() {
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

/// Writes one association column if it still holds `expected`. `true` if written.
async fn set_local_tx<B: Backend>(
    tx: &mut B::Tx,
    portal: PortalId,
    (object_type, local_id): (ObjectType, LocalId),
    field: &str,
    expected: &Value,
    value: &Value,
    now: Millis,
) -> Result<bool, StoreError> {
    let column = schema::column(object_type, field).ok_or_else(|| StoreError::UnknownField {
        object_type,
        field: field.to_owned(),
    })?;
    let table = schema::table(object_type);
    let lock = match B::DIALECT {
        Dialect::Sqlite => "",
        Dialect::Postgres => " FOR UPDATE",
    };
    let sql = format!(
        "SELECT {name} AS v FROM {table} WHERE portal_id = $1 AND id = $2 AND deleted_at IS NULL{lock}",
        name = column.name
    );
    let rows = B::fetch(
        tx,
        Sql::Built(sql),
        vec![pid(portal), Arg::Int(Some(local_id.get()))],
    )
    .await?;
    let Some(row) = rows.first() else {
        return Ok(false);
    };
    let current = match row.cell("v") {
        Cell::Null => Value::Null,
        Cell::Int(v) => Value::from(*v),
        Cell::Real(v) => Value::from(*v),
        Cell::Json(v) => v.clone(),
        Cell::Text(s) => serde_json::from_str(s).unwrap_or_else(|_| Value::String(s.clone())),
    };
    if normalized(&current) != normalized(expected) {
        return Ok(false);
    }
    let mut binder = Binder::default();
    let v = binder.bind(schema::value_to_arg(object_type, column, value)?);
    let t = binder.bind(Arg::Int(Some(now)));
    let p = binder.bind(pid(portal));
    let i = binder.bind(Arg::Int(Some(local_id.get())));
    let sql = format!(
        "UPDATE {table} SET {name} = {v}, updated_at = {t} WHERE portal_id = {p} AND id = {i}",
        name = column.name
    );
    B::exec(tx, Sql::Built(sql), binder.args).await?;
    Ok(true)
}

async fn enqueue_tx<B: Backend>(
    tx: &mut B::Tx,
    portal: PortalId,
    object_type: ObjectType,
    local_id: LocalId,
    now: Millis,
) -> Result<(), StoreError> {
    let sql = format!(
        "INSERT INTO outbox (portal_id, object_type, local_id, op, hubspot_id, captured_at) \
         SELECT portal_id, $2, id, 'upsert', hubspot_id, $4 FROM {} WHERE portal_id = $1 AND id = $3",
        schema::table(object_type)
    );
    B::exec(
        tx,
        Sql::Built(sql),
        vec![
            pid(portal),
            object_type.plural().into(),
            Arg::Int(Some(local_id.get())),
            Arg::Int(Some(now)),
        ],
    )
    .await?;
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

async fn insert_conflicts_tx<B: Backend>(
    tx: &mut B::Tx,
    portal: PortalId,
    object_type: ObjectType,
    local_id: LocalId,
    hubspot_id: Option<HubspotId>,
    conflicts: &[Conflict],
    now: Millis,
) -> Result<(), StoreError> {
    for c in conflicts {
        let policy = serde_json::to_value(c.policy)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        let winner = serde_json::to_value(c.winner)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        B::exec(
            tx,
            Sql::Static(
                "INSERT INTO conflicts (portal_id, object_type, local_id, hubspot_id, field, base, local_value, \
                 local_ts, remote_value, remote_ts, policy, winner, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
            ),
            vec![
                pid(portal),
                object_type.plural().into(),
                Arg::Int(Some(local_id.get())),
                Arg::Text(hubspot_id.map(|h| h.to_string())),
                c.field.as_str().into(),
                Arg::Json(Some(c.base.clone())),
                Arg::Json(Some(c.local.clone())),
                Arg::Int(Some(c.local_ts)),
                Arg::Json(Some(c.remote.clone())),
                Arg::Int(Some(c.remote_ts)),
                policy.into(),
                winner.into(),
                Arg::Int(Some(now)),
            ],
        )
        .await?;
    }
    Ok(())
}

#[async_trait]
impl<B: Backend> AssociationStore for SqlStore<B> {
    async fn get_association_bases(
        &self,
        portal: PortalId,
        object_type: ObjectType,
        local_ids: &[LocalId],
    ) -> Result<Vec<AssociationBase>, StoreError> {
        let mut out = Vec::new();
        for chunk in local_ids.chunks(500) {
            let mut binder = Binder::default();
            binder.bind(pid(portal));
            binder.bind(object_type.plural().into());
            let ids: Vec<String> = chunk
                .iter()
                .map(|id| binder.bind(Arg::Int(Some(id.get()))))
                .collect();
            let sql = format!(
                "SELECT object_type, local_id, field, targets, synced_at FROM association_state \
                 WHERE portal_id = $1 AND object_type = $2 AND local_id IN ({})",
                ids.join(", ")
            );
            for row in self.db.read(Sql::Built(sql), binder.args).await? {
                out.push(base_from_row(&row)?);
            }
        }
        Ok(out)
    }

    async fn save_association_bases(
        &self,
        portal: PortalId,
        bases: Vec<AssociationBase>,
    ) -> Result<(), StoreError> {
        if bases.is_empty() {
            return Ok(());
        }
        let mut tx = self.db.begin().await?;
        for base in &bases {
            save_base_tx::<B>(&mut tx, portal, base).await?;
        }
        B::commit(tx).await
    }

    async fn local_ids_by_hubspot_ids(
        &self,
        portal: PortalId,
        object_type: ObjectType,
        hubspot_ids: &[HubspotId],
    ) -> Result<BTreeMap<HubspotId, LocalId>, StoreError> {
        let mut out = BTreeMap::new();
        let table = schema::table(object_type);
        for chunk in hubspot_ids.chunks(500) {
            let mut binder = Binder::default();
            binder.bind(pid(portal));
            let ids: Vec<String> = chunk
                .iter()
                .map(|id| binder.bind(Arg::Text(Some(id.to_string()))))
                .collect();
            let sql = format!(
                "SELECT id, hubspot_id FROM {table} WHERE portal_id = $1 AND deleted_at IS NULL \
                 AND hubspot_id IN ({}) ORDER BY id",
                ids.join(", ")
            );
            for row in self.db.read(Sql::Built(sql), binder.args).await? {
                let local = LocalId(row.i64(table, "id")?);
                let hubspot = row
                    .text(table, "hubspot_id")?
                    .parse::<HubspotId>()
                    .map_err(|e| StoreError::corrupt(table, "hubspot_id", e.to_string()))?;
                out.entry(hubspot).or_insert(local);
            }
        }
        Ok(out)
    }

    async fn apply_associations(
        &self,
        portal: PortalId,
        ops: Vec<AssociationOp>,
        done_inbox_ids: &[i64],
        fence: Option<Fence>,
    ) -> Result<AssociationApplied, StoreError> {
        let now = now_ms();
        let mut applied = AssociationApplied::default();
        let mut tx = self.db.begin().await?;
        check_fence::<B>(&mut tx, portal, fence).await?;
        B::start_apply(&mut tx).await?;
        for op in &ops {
            match op {
                AssociationOp::SetLocal {
                    object_type,
                    local_id,
                    field,
                    expected,
                    value,
                } => {
                    if set_local_tx::<B>(
                        &mut tx,
                        portal,
                        (*object_type, *local_id),
                        field,
                        expected,
                        value,
                        now,
                    )
                    .await?
                    {
                        applied.written += 1;
                    } else {
                        applied.stale += 1;
                    }
                }
                AssociationOp::SaveBase(base) => save_base_tx::<B>(&mut tx, portal, base).await?,
                AssociationOp::Conflicts {
                    object_type,
                    local_id,
                    hubspot_id,
                    conflicts,
                } => {
                    insert_conflicts_tx::<B>(
                        &mut tx,
                        portal,
                        *object_type,
                        *local_id,
                        *hubspot_id,
                        conflicts,
                        now,
                    )
                    .await?
                }
                AssociationOp::Enqueue {
                    object_type,
                    local_id,
                } => enqueue_tx::<B>(&mut tx, portal, *object_type, *local_id, now).await?,
                AssociationOp::Counter { name, delta } => {
                    B::exec(
                        &mut tx,
                        Sql::Static(
                            "INSERT INTO counters (portal_id, name, value) VALUES ($1, $2, $3) \
                             ON CONFLICT (portal_id, name) DO UPDATE SET value = counters.value + excluded.value",
                        ),
                        vec![pid(portal), name.as_str().into(), Arg::Int(Some(*delta))],
                    )
                    .await?;
                }
                AssociationOp::SetCursor { name, value } => {
                    B::exec(
                        &mut tx,
                        Sql::Static(
                            "INSERT INTO cursors (portal_id, name, value, updated_at) VALUES ($1, $2, $3, $4) \
                             ON CONFLICT (portal_id, name) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
                        ),
                        vec![
                            pid(portal),
                            name.as_str().into(),
                            value.as_str().into(),
                            Arg::Int(Some(now)),
                        ],
                    )
                    .await?;
                }
            }
        }
        for chunk in done_inbox_ids.chunks(500) {
            let mut binder = Binder::default();
            binder.bind(pid(portal));
            let ids: Vec<String> = chunk
                .iter()
                .map(|id| binder.bind(Arg::Int(Some(*id))))
                .collect();
            let sql = format!(
                "DELETE FROM inbox WHERE portal_id = $1 AND id IN ({})",
                ids.join(", ")
            );
            B::exec(&mut tx, Sql::Built(sql), binder.args).await?;
        }
        B::end_apply(&mut tx).await?;
        B::commit(tx).await?;
        Ok(applied)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn empty_list_and_null_compare_equal_and_order_does_not_matter() {
        assert_eq!(normalized(&json!([])), normalized(&Value::Null));
        assert_eq!(normalized(&json!([3, 1, 2])), normalized(&json!([1, 2, 3])));
        assert_eq!(normalized(&json!("7")), normalized(&json!(7)));
        assert_ne!(normalized(&json!(7)), normalized(&json!(8)));
    }

    #[test]
    fn stored_targets_parse_sorted_and_deduplicated() {
        assert_eq!(
            parse_targets(r#"["9","3","9"]"#).unwrap(),
            vec![HubspotId(3), HubspotId(9)]
        );
        assert!(parse_targets("not json").is_err());
    }
}
