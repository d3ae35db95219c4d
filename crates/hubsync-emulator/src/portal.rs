//! One portal's data and the write operations shared by the CRM API and the admin "person in
//! the UI": each returns the change events HubSpot would turn into webhooks.

use std::collections::BTreeMap;

use axum::http::StatusCode;
use serde_json::{Map, Value, json};

use crate::error::ApiError;
use crate::model::{COMPUTED, ObjectKind, PropertyRegistry, ValueError, iso};
use crate::store::{AssocChange, AssocStore, ObjectStore, Record, UniqueKeys};

/// Who made a change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Actor {
    /// An app writing through the API.
    App(u64),
    /// A person in the HubSpot UI.
    User(u64),
}

/// What happened to a record, before it becomes a webhook event.
#[derive(Debug, Clone)]
pub enum Change {
    /// Created.
    Creation,
    /// Archived.
    Deletion,
    /// Restored from the recycle bin.
    Restore,
    /// One property changed (value `""` when cleared).
    Property {
        /// Property name.
        name: String,
        /// New value.
        value: String,
    },
    /// Merged.
    Merge {
        /// The primary id.
        primary: u64,
        /// The merged-away ids.
        merged: Vec<u64>,
        /// The resulting id.
        new_id: u64,
        /// Properties filled from the merged-away record.
        moved: usize,
    },
    /// One direction of an association changed.
    Association {
        /// The change.
        change: AssocChange,
        /// Removed instead of added.
        removed: bool,
    },
}

/// A change to one record.
#[derive(Debug, Clone)]
pub struct ChangeEvent {
    /// Object kind of the record.
    pub kind: ObjectKind,
    /// Record id.
    pub object_id: u64,
    /// The change.
    pub change: Change,
    /// When (ms).
    pub occurred_at: i64,
    /// Who.
    pub actor: Actor,
}

/// Which properties to render.
#[derive(Debug, Clone)]
pub enum PropSelection {
    /// The kind's default set (missing ones as `null`).
    Default,
    /// An explicit list (plus create/modified dates and `hs_object_id`); unknown names omitted.
    Explicit(Vec<String>),
    /// Defaults plus the given names (create/update responses).
    DefaultPlus(Vec<String>),
}

impl PropSelection {
    /// From a comma-separated `properties` parameter (empty → defaults).
    pub fn from_list(list: Vec<String>) -> Self {
        let list: Vec<String> = list
            .into_iter()
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .collect();
        if list.is_empty() {
            Self::Default
        } else {
            Self::Explicit(list)
        }
    }
}

/// Write-time options.
#[derive(Debug, Clone, Copy)]
pub struct WriteCtx {
    /// Now (ms).
    pub now: i64,
    /// Search lag (ms).
    pub lag_ms: u64,
    /// Who.
    pub actor: Actor,
    /// Emit `propertyChange` for unchanged values.
    pub emit_unchanged: bool,
    /// A merge creates a record with a new id (contacts and companies).
    pub merge_new_id: bool,
    /// A merge emits `deletion` for the merged-away record.
    pub merge_emits_deletion: bool,
}

impl WriteCtx {
    /// A context from the current settings.
    pub fn from_settings(s: &crate::config::Settings, actor: Actor) -> Self {
        Self {
            now: crate::model::now_ms(),
            lag_ms: s.search_lag_ms,
            actor,
            emit_unchanged: s.emit_unchanged_property_change,
            merge_new_id: s.merge_creates_new_id,
            merge_emits_deletion: s.merge_emits_deletion,
        }
    }
}

/// All data of one portal.
#[derive(Debug)]
pub struct PortalData {
    /// Portal id (for error bodies).
    pub portal_id: u64,
    /// Records per kind.
    pub stores: [ObjectStore; 3],
    /// Properties per kind.
    pub props: [PropertyRegistry; 3],
    /// Unique-index keys per kind.
    pub ukeys: [UniqueKeys; 3],
    /// Associations.
    pub assoc: AssocStore,
}

/// Validated property writes.
pub type Writes = Vec<(u16, Option<String>)>;

impl PortalData {
    /// An empty portal.
    pub fn new(portal_id: u64, now: i64) -> Self {
        let props = ObjectKind::ALL.map(|k| PropertyRegistry::builtin(k, now));
        let ukeys = [0, 1, 2].map(|i| UniqueKeys::from_registry(ObjectKind::ALL[i], &props[i]));
        Self {
            portal_id,
            stores: [
                ObjectStore::new(101),
                ObjectStore::new(101),
                ObjectStore::new(101),
            ],
            props,
            ukeys,
            assoc: AssocStore::default(),
        }
    }

    /// Rebuilds unique-index keys after a property definition change.
    pub fn refresh_ukeys(&mut self, kind: ObjectKind) {
        let i = kind.index();
        self.ukeys[i] = UniqueKeys::from_registry(kind, &self.props[i]);
    }

    /// Store of a kind.
    pub fn store(&self, kind: ObjectKind) -> &ObjectStore {
        &self.stores[kind.index()]
    }

    /// Registry of a kind.
    pub fn reg(&self, kind: ObjectKind) -> &PropertyRegistry {
        &self.props[kind.index()]
    }

    /// Validates a `properties` object from a request body.
    pub fn prepare(
        &self,
        kind: ObjectKind,
        input: &Map<String, Value>,
    ) -> Result<Writes, ApiError> {
        let reg = self.reg(kind);
        let mut out = Vec::with_capacity(input.len());
        let mut errs: Vec<ValueError> = Vec::new();
        for (name, v) in input {
            let raw = match v {
                Value::String(s) => s.clone(),
                Value::Null => String::new(),
                Value::Bool(b) => b.to_string(),
                Value::Number(n) => n.to_string(),
                other => other.to_string(),
            };
            match reg.normalise(name, &raw) {
                Ok(w) => out.push(w),
                Err(e) => errs.push(e),
            }
        }
        if errs.is_empty() {
            Ok(out)
        } else {
            Err(ApiError::property_values(self.portal_id, &errs))
        }
    }

    /// The value of a property on a record, including computed ones.
    pub fn value_of(&self, kind: ObjectKind, id: u64, rec: &Record, name: &str) -> Option<String> {
        match name {
            "hs_object_id" => Some(id.to_string()),
            "createdate" => Some(iso(rec.created)),
            "hs_lastmodifieddate" => Some(iso(rec.updated)),
            "lastmodifieddate" if kind == ObjectKind::Contact => Some(iso(rec.updated)),
            _ => self
                .reg(kind)
                .index(name)
                .and_then(|i| rec.get(i))
                .map(str::to_owned),
        }
    }

    /// Renders `SimplePublicObject`.
    pub fn render(&self, kind: ObjectKind, id: u64, rec: &Record, sel: &PropSelection) -> Value {
        let reg = self.reg(kind);
        let mut props: BTreeMap<String, Value> = BTreeMap::new();
        let mut put = |name: &str, with_null: bool| {
            if props.contains_key(name) {
                return;
            }
            let exists = COMPUTED.contains(&name) || reg.index(name).is_some();
            if !exists {
                return;
            }
            match self.value_of(kind, id, rec, name) {
                Some(v) => {
                    props.insert(name.to_owned(), Value::String(v));
                }
                None if with_null => {
                    props.insert(name.to_owned(), Value::Null);
                }
                None => {}
            }
        };
        match sel {
            PropSelection::Default => kind.default_props().iter().for_each(|p| put(p, true)),
            PropSelection::Explicit(list) => {
                list.iter().for_each(|p| put(p, true));
                kind.always_props().iter().for_each(|p| put(p, true));
            }
            PropSelection::DefaultPlus(list) => {
                kind.default_props().iter().for_each(|p| put(p, true));
                list.iter().for_each(|p| put(p, true));
            }
        }
        let mut obj = json!({
            "id": id.to_string(),
            "properties": props,
            "createdAt": iso(rec.created),
            "updatedAt": iso(rec.updated),
            "archived": rec.archived_at != 0,
        });
        if rec.archived_at != 0 {
            obj["archivedAt"] = Value::String(iso(rec.archived_at));
        }
        obj
    }

    /// Finds a live record by id (following merge aliases) or by a unique `idProperty`.
    pub fn lookup(&self, kind: ObjectKind, key: &str, id_property: Option<&str>) -> Option<u64> {
        let store = self.store(kind);
        match id_property {
            None | Some("hs_object_id") => {
                let id: u64 = key.trim().parse().ok()?;
                let id = store.resolve(id);
                store.live.contains_key(&id).then_some(id)
            }
            Some(p) => {
                let def = self.reg(kind).get(p)?;
                if !def.unique {
                    return None;
                }
                let idx = self.reg(kind).index(p)?;
                store.find_unique(idx, key)
            }
        }
    }

    /// Whether `id_property` is usable as an id property.
    pub fn check_id_property(&self, kind: ObjectKind, p: &str) -> Result<(), ApiError> {
        match self.reg(kind).get(p) {
            Some(d) if d.unique => Ok(()),
            Some(_) => Err(ApiError::validation(format!(
                "Property {p} is not a unique identifier property"
            ))),
            None => Err(ApiError::validation(format!("Property {p} does not exist"))),
        }
    }

    /// A conflict with another record holding one of the written unique values.
    fn unique_conflict(
        &self,
        kind: ObjectKind,
        writes: &Writes,
        except: Option<u64>,
    ) -> Option<u64> {
        let uk = &self.ukeys[kind.index()];
        let store = self.store(kind);
        for (idx, v) in writes {
            let Some(v) = v else { continue };
            let is_unique = uk.uniques.contains(idx);
            let is_additional = uk.email_pair.is_some_and(|(_, a)| a == *idx);
            if !is_unique && !is_additional {
                continue;
            }
            let target = if is_additional {
                uk.email_pair.map(|(e, _)| e).unwrap_or(*idx)
            } else {
                *idx
            };
            for part in v.split(';').filter(|p| !p.is_empty()) {
                if let Some(found) = store.find_unique(target, part)
                    && Some(found) != except
                {
                    return Some(found);
                }
            }
        }
        None
    }

    fn conflict_error(kind: ObjectKind, id: u64) -> ApiError {
        let label = match kind {
            ObjectKind::Contact => "Contact",
            ObjectKind::Company => "Company",
            ObjectKind::Deal => "Deal",
        };
        ApiError::conflict(label, id)
    }

    /// Checks required properties on create.
    fn check_required(&self, kind: ObjectKind, writes: &mut Writes) -> Result<(), ApiError> {
        let reg = self.reg(kind);
        let has = |w: &Writes, n: &str| {
            reg.index(n)
                .is_some_and(|i| w.iter().any(|(j, v)| *j == i && v.is_some()))
        };
        let missing: Vec<&str> = match kind {
            ObjectKind::Contact => vec![],
            ObjectKind::Company => {
                if has(writes, "name") || has(writes, "domain") {
                    vec![]
                } else {
                    vec!["name"]
                }
            }
            ObjectKind::Deal => {
                if !has(writes, "pipeline")
                    && let Some(i) = reg.index("pipeline")
                {
                    writes.push((i, Some("default".to_owned())));
                }
                ["dealname", "dealstage"]
                    .into_iter()
                    .filter(|n| !has(writes, n))
                    .collect()
            }
        };
        if missing.is_empty() {
            return Ok(());
        }
        let errs: Vec<ValueError> = missing
            .iter()
            .map(|n| ValueError {
                name: (*n).to_owned(),
                code: "REQUIRED_PROPERTY",
                message: format!("Property \"{n}\" is required"),
            })
            .collect();
        Err(ApiError::property_values(self.portal_id, &errs))
    }

    /// Creates a record. `createdate` may be given (import of history); otherwise now.
    pub fn create(
        &mut self,
        kind: ObjectKind,
        mut writes: Writes,
        ctx: &WriteCtx,
        events: &mut Vec<ChangeEvent>,
    ) -> Result<u64, ApiError> {
        self.check_required(kind, &mut writes)?;
        if let Some(existing) = self.unique_conflict(kind, &writes, None) {
            return Err(Self::conflict_error(kind, existing));
        }
        let i = kind.index();
        let createdate_idx = self.props[i].index("createdate");
        let mut rec = Record {
            created: ctx.now,
            updated: ctx.now,
            archived_at: 0,
            props: Vec::new(),
        };
        for (idx, v) in &writes {
            if Some(*idx) == createdate_idx {
                if let Some(ms) = v.as_deref().and_then(crate::model::parse_time) {
                    rec.created = ms;
                }
                continue;
            }
            rec.set(*idx, v.as_deref());
        }
        let store = &mut self.stores[i];
        let id = store.alloc_id();
        store.note_write(id, ctx.now, ctx.lag_ms);
        let ev = |change| ChangeEvent {
            kind,
            object_id: id,
            change,
            occurred_at: ctx.now,
            actor: ctx.actor,
        };
        events.push(ev(Change::Creation));
        for (idx, v) in &rec.props {
            let name = self.props[i].def(*idx).name.clone();
            events.push(ev(Change::Property {
                name,
                value: v.to_string(),
            }));
        }
        self.stores[i].insert_live(id, rec, &self.ukeys[i]);
        Ok(id)
    }

    /// Updates a live record (id already resolved).
    pub fn update(
        &mut self,
        kind: ObjectKind,
        id: u64,
        writes: &Writes,
        ctx: &WriteCtx,
        events: &mut Vec<ChangeEvent>,
    ) -> Result<(), ApiError> {
        let i = kind.index();
        if !self.stores[i].live.contains_key(&id) {
            return Err(ApiError::object_not_found(&id.to_string()));
        }
        if let Some(existing) = self.unique_conflict(kind, writes, Some(id)) {
            return Err(Self::conflict_error(kind, existing));
        }
        let createdate_idx = self.props[i].index("createdate");
        let store = &mut self.stores[i];
        store.note_write(id, ctx.now, ctx.lag_ms);
        let Some(mut rec) = store.remove_live(id, &self.ukeys[i]) else {
            return Err(ApiError::object_not_found(&id.to_string()));
        };
        let mut changed = false;
        for (idx, v) in writes {
            let name = self.props[i].def(*idx).name.clone();
            if Some(*idx) == createdate_idx {
                if let Some(ms) = v.as_deref().and_then(crate::model::parse_time)
                    && ms != rec.created
                {
                    rec.created = ms;
                    changed = true;
                }
                continue;
            }
            let multi = self.props[i].def(*idx).kind == crate::model::PropType::Enumeration
                || self.ukeys[i].email_pair.is_some_and(|(_, a)| a == *idx);
            let value = if multi && v.as_deref().is_some_and(|s| s.starts_with(';')) {
                // A leading `;` appends to a multi-value property.
                let cur = rec.get(*idx).unwrap_or("").to_owned();
                let add = v.as_deref().unwrap_or("").trim_start_matches(';');
                Some(if cur.is_empty() {
                    add.to_owned()
                } else {
                    format!("{cur};{add}")
                })
            } else {
                v.clone()
            };
            let did = rec.set(*idx, value.as_deref());
            if did || ctx.emit_unchanged {
                events.push(ChangeEvent {
                    kind,
                    object_id: id,
                    change: Change::Property {
                        name,
                        value: value.unwrap_or_default(),
                    },
                    occurred_at: ctx.now,
                    actor: ctx.actor,
                });
            }
            changed |= did;
        }
        if changed {
            rec.updated = ctx.now.max(rec.updated);
        }
        self.stores[i].insert_live(id, rec, &self.ukeys[i]);
        Ok(())
    }

    /// Archives a live record. Returns `false` when there was none.
    pub fn archive(
        &mut self,
        kind: ObjectKind,
        id: u64,
        ctx: &WriteCtx,
        events: &mut Vec<ChangeEvent>,
    ) -> bool {
        let i = kind.index();
        let store = &mut self.stores[i];
        if !store.live.contains_key(&id) {
            return false;
        }
        store.note_write(id, ctx.now, ctx.lag_ms);
        let Some(mut rec) = store.remove_live(id, &self.ukeys[i]) else {
            return false;
        };
        rec.archived_at = ctx.now;
        rec.updated = ctx.now.max(rec.updated);
        store.archived.insert(id, rec);
        events.push(ChangeEvent {
            kind,
            object_id: id,
            change: Change::Deletion,
            occurred_at: ctx.now,
            actor: ctx.actor,
        });
        true
    }

    /// Restores an archived record.
    pub fn restore(
        &mut self,
        kind: ObjectKind,
        id: u64,
        ctx: &WriteCtx,
        events: &mut Vec<ChangeEvent>,
    ) -> Result<(), ApiError> {
        let i = kind.index();
        let Some(rec) = self.stores[i].archived.get(&id) else {
            return Err(ApiError::object_not_found(&id.to_string()));
        };
        let writes: Writes = rec
            .props
            .iter()
            .map(|(k, v)| (*k, Some(v.to_string())))
            .collect();
        if let Some(existing) = self.unique_conflict(kind, &writes, Some(id)) {
            return Err(Self::conflict_error(kind, existing));
        }
        let store = &mut self.stores[i];
        let Some(mut rec) = store.archived.remove(&id) else {
            return Err(ApiError::object_not_found(&id.to_string()));
        };
        store.note_write(id, ctx.now, ctx.lag_ms);
        rec.archived_at = 0;
        rec.updated = ctx.now.max(rec.updated);
        store.insert_live(id, rec, &self.ukeys[i]);
        events.push(ChangeEvent {
            kind,
            object_id: id,
            change: Change::Restore,
            occurred_at: ctx.now,
            actor: ctx.actor,
        });
        Ok(())
    }

    /// Merges `secondary` into `primary`; returns the resulting id.
    pub fn merge(
        &mut self,
        kind: ObjectKind,
        primary: u64,
        secondary: u64,
        ctx: &WriteCtx,
        events: &mut Vec<ChangeEvent>,
    ) -> Result<u64, ApiError> {
        let i = kind.index();
        let p = self.stores[i].resolve(primary);
        let s = self.stores[i].resolve(secondary);
        if !self.stores[i].live.contains_key(&p) {
            return Err(ApiError::object_not_found(&primary.to_string()));
        }
        if !self.stores[i].live.contains_key(&s) {
            return Err(ApiError::object_not_found(&secondary.to_string()));
        }
        if p == s {
            return Err(ApiError::validation(format!(
                "Cannot merge {} {p} into itself",
                kind.upper()
            )));
        }
        let reg = &self.props[i];
        let merged_idx = reg.index_any("hs_merged_object_ids");
        let vids_idx = reg.index_any("hs_calculated_merged_vids");
        let (email, additional) = self.ukeys[i]
            .email_pair
            .map_or((None, None), |(e, a)| (Some(e), Some(a)));
        let ukeys = self.ukeys[i].clone();
        let store = &mut self.stores[i];
        store.note_write(p, ctx.now, ctx.lag_ms);
        store.note_write(s, ctx.now, ctx.lag_ms);
        let (Some(mut rec), Some(sec)) =
            (store.remove_live(p, &ukeys), store.remove_live(s, &ukeys))
        else {
            return Err(ApiError::object_not_found(&primary.to_string()));
        };
        let mut moved = 0;
        let mut merged_ids: Vec<String> = Vec::new();
        for r in [&rec, &sec] {
            if let Some(v) = merged_idx.and_then(|m| r.get(m)) {
                merged_ids.extend(v.split(';').filter(|x| !x.is_empty()).map(str::to_owned));
            }
        }
        for (idx, v) in &sec.props {
            if Some(*idx) == merged_idx
                || Some(*idx) == vids_idx
                || Some(*idx) == email
                || Some(*idx) == additional
            {
                continue;
            }
            if rec.get(*idx).is_none() {
                rec.set(*idx, Some(v));
                moved += 1;
            }
        }
        if let (Some(e), Some(a)) = (email, additional) {
            let mut extra: Vec<String> = rec
                .get(a)
                .map(|v| v.split(';').map(str::to_owned).collect())
                .unwrap_or_default();
            if let Some(se) = sec.get(e) {
                if rec.get(e).is_none() {
                    rec.set(e, Some(se));
                } else {
                    extra.push(se.to_owned());
                }
            }
            if let Some(sa) = sec.get(a) {
                extra.extend(sa.split(';').map(str::to_owned));
            }
            extra.retain(|x| !x.is_empty());
            extra.dedup();
            if !extra.is_empty() {
                rec.set(a, Some(&extra.join(";")));
            }
        }
        let result_id = if ctx.merge_new_id && kind != ObjectKind::Deal {
            store.alloc_id()
        } else {
            p
        };
        if result_id != p {
            merged_ids.push(p.to_string());
        }
        merged_ids.push(s.to_string());
        merged_ids.dedup();
        if let Some(m) = merged_idx {
            rec.set(m, Some(&merged_ids.join(";")));
        }
        if let Some(vi) = vids_idx {
            let vids: Vec<String> = merged_ids
                .iter()
                .map(|m| format!("{m}:{}", ctx.now))
                .collect();
            rec.set(vi, Some(&vids.join(";")));
        }
        rec.updated = ctx.now;
        store.note_write(result_id, ctx.now, ctx.lag_ms);
        store.insert_live(result_id, rec, &ukeys);
        for old in [p, s] {
            if old != result_id {
                store.aliases.insert(old, result_id);
            }
        }
        self.assoc.repoint(kind, s, result_id);
        self.assoc.repoint(kind, p, result_id);
        events.push(ChangeEvent {
            kind,
            object_id: result_id,
            change: Change::Merge {
                primary: p,
                merged: vec![s],
                new_id: result_id,
                moved,
            },
            occurred_at: ctx.now,
            actor: ctx.actor,
        });
        if ctx.merge_emits_deletion {
            events.push(ChangeEvent {
                kind,
                object_id: s,
                change: Change::Deletion,
                occurred_at: ctx.now,
                actor: ctx.actor,
            });
        }
        Ok(result_id)
    }

    /// Associates two live records with a type (and its inverse).
    pub fn associate(
        &mut self,
        from: (ObjectKind, u64),
        to: (ObjectKind, u64),
        type_id: u32,
        ctx: &WriteCtx,
        events: &mut Vec<ChangeEvent>,
    ) -> Result<(), ApiError> {
        let ty = crate::store::assoc_type(type_id)
            .filter(|t| t.from == from.0 && t.to == to.0)
            .ok_or_else(|| {
                ApiError::validation(format!(
                    "association type id {type_id} doesn't exist between {} and {}",
                    from.0.upper(),
                    to.0.upper()
                ))
            })?;
        for (k, id) in [from, to] {
            if !self.store(k).live.contains_key(&id) {
                return Err(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "VALIDATION_ERROR",
                    format!("{} {id} does not exist", k.upper()),
                ));
            }
        }
        for change in self.assoc.add(from.1, to.1, ty) {
            events.push(ChangeEvent {
                kind: change.ty.from,
                object_id: change.from,
                change: Change::Association {
                    change,
                    removed: false,
                },
                occurred_at: ctx.now,
                actor: ctx.actor,
            });
        }
        Ok(())
    }

    /// Removes every association between two records.
    pub fn dissociate(
        &mut self,
        a: (ObjectKind, u64),
        b: (ObjectKind, u64),
        ctx: &WriteCtx,
        events: &mut Vec<ChangeEvent>,
    ) {
        for change in self.assoc.remove_pair(a, b) {
            events.push(ChangeEvent {
                kind: change.ty.from,
                object_id: change.from,
                change: Change::Association {
                    change,
                    removed: true,
                },
                occurred_at: ctx.now,
                actor: ctx.actor,
            });
        }
    }

    /// Full state dump.
    pub fn dump(&self) -> Value {
        let mut objects = Map::new();
        for kind in ObjectKind::ALL {
            let store = self.store(kind);
            let reg = self.reg(kind);
            let render_all = |id: u64, rec: &Record| {
                let mut props = BTreeMap::new();
                props.insert("hs_object_id".to_owned(), Value::String(id.to_string()));
                props.insert("createdate".to_owned(), Value::String(iso(rec.created)));
                props.insert(
                    kind.lastmodified_prop().to_owned(),
                    Value::String(iso(rec.updated)),
                );
                for (idx, v) in &rec.props {
                    props.insert(reg.def(*idx).name.clone(), Value::String(v.to_string()));
                }
                let mut o = json!({"id": id.to_string(), "properties": props, "createdAt": iso(rec.created),
                    "updatedAt": iso(rec.updated), "archived": rec.archived_at != 0});
                if rec.archived_at != 0 {
                    o["archivedAt"] = Value::String(iso(rec.archived_at));
                }
                o
            };
            let live: Vec<Value> = store
                .live
                .iter()
                .map(|(id, r)| render_all(*id, r))
                .collect();
            let archived: Vec<Value> = store
                .archived
                .iter()
                .map(|(id, r)| render_all(*id, r))
                .collect();
            let aliases: BTreeMap<String, String> = store
                .aliases
                .iter()
                .map(|(a, b)| (a.to_string(), store.resolve(*b).to_string()))
                .collect();
            objects.insert(
                kind.plural().to_owned(),
                json!({"live": live, "archived": archived, "mergedIds": aliases}),
            );
        }
        let assoc: Vec<Value> = self
            .assoc
            .all()
            .into_iter()
            .map(|(fk, fid, tk, tid, types)| {
                json!({"fromObjectType": fk.plural(), "fromObjectId": fid, "toObjectType": tk.plural(), "toObjectId": tid, "typeIds": types})
            })
            .collect();
        json!({"portalId": self.portal_id, "objects": objects, "associations": assoc})
    }
}
