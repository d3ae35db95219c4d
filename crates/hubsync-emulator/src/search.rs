//! CRM search: request validation with HubSpot's limits, filter evaluation with every
//! operator, index-driven candidate selection, one sort, integer-offset paging and the
//! 10,000-result cap.

use std::cmp::Ordering;
use std::ops::Bound;

use serde::Deserialize;
use serde_json::{Value, json};

use crate::config::SearchLimits;
use crate::error::ApiError;
use crate::model::{ObjectKind, PropType, parse_time};
use crate::portal::{PortalData, PropSelection};
use crate::store::{ObjectStore, Record};

/// Highest offset + 1 that may be paged to.
pub const RESULT_CAP: usize = 10_000;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawRequest {
    #[serde(default)]
    query: Option<String>,
    #[serde(default)]
    filter_groups: Option<Vec<RawGroup>>,
    #[serde(default)]
    sorts: Option<Vec<RawSort>>,
    #[serde(default)]
    properties: Option<Vec<String>>,
    #[serde(default)]
    limit: Option<Value>,
    #[serde(default)]
    after: Option<Value>,
}

#[derive(Debug, Deserialize)]
struct RawGroup {
    #[serde(default)]
    filters: Vec<RawFilter>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawFilter {
    property_name: String,
    operator: String,
    #[serde(default)]
    value: Option<Value>,
    #[serde(default)]
    values: Option<Vec<Value>>,
    #[serde(default)]
    high_value: Option<Value>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum RawSort {
    Obj {
        #[serde(rename = "propertyName")]
        property_name: String,
        #[serde(default)]
        direction: Option<String>,
    },
    Str(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Eq,
    Neq,
    Lt,
    Lte,
    Gt,
    Gte,
    Between,
    In,
    NotIn,
    Has,
    NotHas,
    Contains,
    NotContains,
}

/// How values of a property compare.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cmp {
    Id,
    Created,
    Updated,
    Number,
    Time,
    Text,
    Enum,
    Assoc(ObjectKind),
}

#[derive(Debug, Clone)]
struct Filter {
    prop: Option<u16>,
    cmp: Cmp,
    op: Op,
    value: String,
    high: String,
    values: Vec<String>,
}

/// A validated search request.
#[derive(Debug)]
pub struct SearchRequest {
    groups: Vec<Vec<Filter>>,
    query: Option<String>,
    sort: Option<(Cmp, Option<u16>, bool)>,
    /// Properties to render.
    pub selection: PropSelection,
    /// Page size.
    pub limit: usize,
    /// Offset.
    pub offset: usize,
}

fn val_str(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn cmp_for(data: &PortalData, kind: ObjectKind, name: &str) -> (Cmp, Option<u16>) {
    match name {
        "hs_object_id" => return (Cmp::Id, None),
        "createdate" => return (Cmp::Created, None),
        "hs_lastmodifieddate" | "lastmodifieddate" => return (Cmp::Updated, None),
        _ => {}
    }
    if let Some(rest) = name.strip_prefix("associations.")
        && let Some(k) = ObjectKind::parse(rest)
    {
        return (Cmp::Assoc(k), None);
    }
    let reg = data.reg(kind);
    match reg.index(name) {
        Some(i) => {
            let c = match reg.def(i).kind {
                PropType::Number => Cmp::Number,
                PropType::Date | PropType::Datetime => Cmp::Time,
                PropType::Enumeration => Cmp::Enum,
                PropType::Bool | PropType::String | PropType::PhoneNumber => Cmp::Text,
            };
            (c, Some(i))
        }
        None => (Cmp::Text, Some(u16::MAX)),
    }
}

impl SearchRequest {
    /// Parses and validates a request body.
    pub fn parse(
        body: &[u8],
        data: &PortalData,
        kind: ObjectKind,
        limits: &SearchLimits,
    ) -> Result<Self, ApiError> {
        let raw: RawRequest = if body.iter().all(u8::is_ascii_whitespace) {
            serde_json::from_str("{}").map_err(|e| ApiError::bad_json(&e))?
        } else {
            serde_json::from_slice(body).map_err(|e| ApiError::bad_json(&e))?
        };
        if let Some(q) = &raw.query
            && q.chars().count() > 3000
        {
            return Err(ApiError::validation(
                "query exceeds the maximum length of 3000 characters",
            ));
        }
        let groups_raw = raw.filter_groups.unwrap_or_default();
        let total: usize = groups_raw.iter().map(|g| g.filters.len()).sum();
        if groups_raw.len() > limits.max_groups {
            return Err(ApiError::validation_errors(
                format!(
                    "Too many filter groups: {} (maximum {})",
                    groups_raw.len(),
                    limits.max_groups
                ),
                vec![
                    json!({"message": format!("The maximum number of filterGroups is {}", limits.max_groups), "code": "TOO_MANY_FILTER_GROUPS"}),
                ],
            ));
        }
        if let Some(g) = groups_raw
            .iter()
            .find(|g| g.filters.len() > limits.max_filters_per_group)
        {
            return Err(ApiError::validation_errors(
                format!(
                    "Too many filters in a filter group: {} (maximum {})",
                    g.filters.len(),
                    limits.max_filters_per_group
                ),
                vec![
                    json!({"message": format!("The maximum number of filters in a filterGroup is {}", limits.max_filters_per_group), "code": "TOO_MANY_FILTERS"}),
                ],
            ));
        }
        if total > limits.max_filters_total {
            return Err(ApiError::validation_errors(
                format!(
                    "Too many filters: {total} (maximum {})",
                    limits.max_filters_total
                ),
                vec![
                    json!({"message": format!("The maximum number of filters across all filterGroups is {}", limits.max_filters_total), "code": "TOO_MANY_FILTERS"}),
                ],
            ));
        }
        let mut groups = Vec::with_capacity(groups_raw.len());
        for g in groups_raw {
            let mut fs = Vec::with_capacity(g.filters.len());
            for f in g.filters {
                let op = match f.operator.as_str() {
                    "EQ" => Op::Eq,
                    "NEQ" => Op::Neq,
                    "LT" => Op::Lt,
                    "LTE" => Op::Lte,
                    "GT" => Op::Gt,
                    "GTE" => Op::Gte,
                    "BETWEEN" => Op::Between,
                    "IN" => Op::In,
                    "NOT_IN" => Op::NotIn,
                    "HAS_PROPERTY" => Op::Has,
                    "NOT_HAS_PROPERTY" => Op::NotHas,
                    "CONTAINS_TOKEN" => Op::Contains,
                    "NOT_CONTAINS_TOKEN" => Op::NotContains,
                    other => {
                        return Err(ApiError::validation(format!(
                            "Invalid input JSON on line 1, column 1: Cannot deserialize value of type `FilterOperatorEnum` from String \"{other}\": not one of the values accepted for Enum class: [EQ, NEQ, LT, LTE, GT, GTE, BETWEEN, IN, NOT_IN, HAS_PROPERTY, NOT_HAS_PROPERTY, CONTAINS_TOKEN, NOT_CONTAINS_TOKEN]"
                        )));
                    }
                };
                let (cmp, prop) = cmp_for(data, kind, &f.property_name);
                let value = f.value.as_ref().map(val_str);
                let needs_value = !matches!(op, Op::Has | Op::NotHas | Op::In | Op::NotIn);
                if needs_value && value.is_none() {
                    return Err(ApiError::validation(format!(
                        "Filter on {} with operator {} requires a value",
                        f.property_name, f.operator
                    )));
                }
                if op == Op::Between && f.high_value.is_none() {
                    return Err(ApiError::validation(format!(
                        "BETWEEN filter on {} requires a highValue",
                        f.property_name
                    )));
                }
                let values: Vec<String> =
                    f.values.unwrap_or_default().iter().map(val_str).collect();
                if matches!(op, Op::In | Op::NotIn) && values.is_empty() {
                    return Err(ApiError::validation(format!(
                        "{} filter on {} requires values",
                        f.operator, f.property_name
                    )));
                }
                fs.push(Filter {
                    prop,
                    cmp,
                    op,
                    value: value.unwrap_or_default(),
                    high: f.high_value.as_ref().map(val_str).unwrap_or_default(),
                    values,
                });
            }
            groups.push(fs);
        }
        let sorts = raw.sorts.unwrap_or_default();
        if sorts.len() > 1 {
            return Err(ApiError::validation("Only one sort is allowed"));
        }
        let sort = sorts.into_iter().next().map(|s| {
            let (name, desc) = match s {
                RawSort::Obj {
                    property_name,
                    direction,
                } => (property_name, direction.as_deref() == Some("DESCENDING")),
                RawSort::Str(s) => match s.strip_prefix('-') {
                    Some(n) => (n.to_owned(), true),
                    None => (s, false),
                },
            };
            let (cmp, prop) = cmp_for(data, kind, &name);
            (cmp, prop, desc)
        });
        let limit = match raw.limit.as_ref() {
            None | Some(Value::Null) => 10,
            Some(v) => val_str(v)
                .parse::<usize>()
                .map_err(|_| ApiError::validation("limit must be an integer"))?,
        };
        if limit > 200 {
            return Err(ApiError::validation(format!(
                "limit must be less than or equal to 200, but was {limit}"
            )));
        }
        let offset = match raw.after.as_ref() {
            None | Some(Value::Null) => 0,
            Some(v) => {
                let s = val_str(v);
                if s.is_empty() {
                    0
                } else {
                    s.parse::<usize>().map_err(|_| {
                        ApiError::validation(format!("after must be an integer offset, got {s}"))
                    })?
                }
            }
        };
        if offset >= RESULT_CAP {
            return Err(ApiError::validation(format!(
                "Paging beyond {RESULT_CAP} results is not supported: after={offset}. Narrow the search with filters (e.g. hs_object_id GT the last id)."
            )));
        }
        Ok(Self {
            groups,
            query: raw
                .query
                .map(|q| q.trim().to_lowercase())
                .filter(|q| !q.is_empty()),
            sort,
            selection: PropSelection::from_list(raw.properties.unwrap_or_default()),
            limit: limit.clamp(1, 200),
            offset,
        })
    }

    /// Runs the search: `(total, ids of the page)`.
    pub fn run(&self, data: &PortalData, kind: ObjectKind, now: i64) -> (usize, Vec<u64>) {
        let store = data.store(kind);
        let want = (self.offset + self.limit).min(RESULT_CAP);
        let sort = self.sort.unwrap_or((Cmp::Created, None, false));
        let empty: Vec<Filter> = Vec::new();
        let group = self.groups.first().unwrap_or(&empty);
        let single = self.groups.len() <= 1;
        let sort_indexed = matches!(sort.0, Cmp::Id | Cmp::Created | Cmp::Updated);
        if single
            && store.overlay.is_empty()
            && sort_indexed
            && !has_point_lookup(data, kind, group)
        {
            // A selective range on another index beats walking the sort index.
            let selective = pick_driver(store, group).filter(|d| d.0 != sort.0 && d.3 < DRIVER_CAP);
            if selective.is_none() {
                return self.stream(data, kind, store, group, sort.0, sort.2, want);
            }
        }
        // General path: gather candidates, evaluate, sort, slice.
        let mut ids: Vec<u64> = Vec::new();
        if self.groups.is_empty() {
            self.collect(store, data, kind, &empty, now, &mut ids);
        } else {
            for g in &self.groups {
                self.collect(store, data, kind, g, now, &mut ids);
            }
            ids.sort_unstable();
            ids.dedup();
        }
        let key = |id: u64| -> SortKey {
            let Some(rec) = store.visible(id, now) else {
                return SortKey::Missing;
            };
            match sort.0 {
                Cmp::Id => SortKey::Num(id as f64),
                Cmp::Created => SortKey::Num(rec.created as f64),
                Cmp::Updated => SortKey::Num(rec.updated as f64),
                c => match sort.1.and_then(|p| rec.get(p)) {
                    None => SortKey::Missing,
                    Some(v) => match c {
                        Cmp::Number => v.parse().map(SortKey::Num).unwrap_or(SortKey::Missing),
                        Cmp::Time => parse_time(v)
                            .map(|t| SortKey::Num(t as f64))
                            .unwrap_or(SortKey::Missing),
                        _ => SortKey::Text(v.to_lowercase()),
                    },
                },
            }
        };
        let mut keyed: Vec<(SortKey, i64, u64)> = ids
            .into_iter()
            .map(|id| {
                (
                    key(id),
                    store.visible(id, now).map(|r| r.created).unwrap_or(0),
                    id,
                )
            })
            .collect();
        keyed.sort_by(|a, b| {
            let o = a.0.cmp_dir(&b.0, sort.2);
            o.then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2))
        });
        let total = keyed.len();
        let page = keyed
            .iter()
            .skip(self.offset)
            .take(want.saturating_sub(self.offset))
            .map(|k| k.2)
            .collect();
        (total, page)
    }

    /// Walks the sort index in order: the page is the first matches past the offset, and the
    /// total counts every match (filters fully expressed by the index bounds cost nothing).
    #[allow(clippy::too_many_arguments)]
    fn stream(
        &self,
        data: &PortalData,
        kind: ObjectKind,
        store: &ObjectStore,
        group: &[Filter],
        field: Cmp,
        desc: bool,
        want: usize,
    ) -> (usize, Vec<u64>) {
        let (lo, hi) = bounds(group, field);
        let residual: Vec<Filter> = group
            .iter()
            .filter(|f| !(vacuous(store, f) || (f.cmp == field && covered(f))))
            .cloned()
            .collect();
        let needs_record = !residual.is_empty() || self.query.is_some();
        let mut total = 0usize;
        let mut page = Vec::with_capacity(self.limit);
        let mut take = |id: u64| {
            if total >= self.offset && total < want {
                page.push(id);
            }
            total += 1;
        };
        let check = |id: u64, rec: &Record| self.matches_group(data, kind, &residual, id, rec);
        match field {
            Cmp::Id => {
                let (id_lo, id_hi) = id_range(lo, hi);
                let r = store.live.range((id_lo, id_hi));
                if !needs_record && !desc {
                    // Page first, then count the rest of the range without touching records.
                    r.take(want).for_each(|(id, _)| take(*id));
                    let total = store.live_ids.count(id_lo, id_hi);
                    return (usize::try_from(total).unwrap_or(usize::MAX), page);
                }
                let f = |(id, rec): (&u64, &Record)| check(*id, rec).then_some(*id);
                if desc {
                    r.rev().filter_map(f).for_each(&mut take);
                } else {
                    r.filter_map(f).for_each(&mut take);
                }
            }
            _ => {
                let idx = if field == Cmp::Created {
                    &store.by_created
                } else {
                    &store.by_updated
                };
                let unbounded = matches!((lo, hi), (Bound::Unbounded, Bound::Unbounded));
                if !needs_record && unbounded {
                    let n = want.saturating_sub(self.offset);
                    page = if desc {
                        idx.iter()
                            .rev()
                            .skip(self.offset)
                            .take(n)
                            .map(|e| e.1)
                            .collect()
                    } else {
                        idx.iter().skip(self.offset).take(n).map(|e| e.1).collect()
                    };
                    return (idx.len(), page);
                }
                let r = idx.range(pair_range(lo, hi));
                let f = |&(_, id): &(i64, u64)| {
                    if !needs_record {
                        return Some(id);
                    }
                    store.live.get(&id).filter(|rec| check(id, rec)).map(|_| id)
                };
                if desc {
                    r.rev().filter_map(f).for_each(&mut take);
                } else {
                    r.filter_map(f).for_each(&mut take);
                }
            }
        }
        (total, page)
    }

    fn collect(
        &self,
        store: &ObjectStore,
        data: &PortalData,
        kind: ObjectKind,
        group: &[Filter],
        now: i64,
        out: &mut Vec<u64>,
    ) {
        let check = |id: u64| {
            store
                .visible(id, now)
                .is_some_and(|rec| self.matches_group(data, kind, group, id, rec))
        };
        let overlay = store
            .overlay
            .iter()
            .filter(|(_, o)| o.visible_at > now)
            .map(|(id, _)| *id);
        // Point lookups first.
        for f in group {
            if f.op == Op::Eq && f.cmp == Cmp::Id {
                let ids = f
                    .value
                    .trim()
                    .parse::<u64>()
                    .ok()
                    .into_iter()
                    .chain(overlay.clone());
                out.extend(ids.filter(|id| check(*id)));
                return;
            }
            if f.op == Op::In && f.cmp == Cmp::Id {
                let ids = f
                    .values
                    .iter()
                    .filter_map(|v| v.trim().parse::<u64>().ok())
                    .chain(overlay.clone());
                out.extend(ids.filter(|id| check(*id)));
                return;
            }
            if f.op == Op::Eq
                && f.cmp == Cmp::Text
                && let Some(p) = f.prop
                && data.ukeys[kind.index()].uniques.contains(&p)
            {
                let hit = store.find_unique(p, &f.value);
                out.extend(
                    hit.into_iter()
                        .chain(overlay.clone())
                        .filter(|id| check(*id)),
                );
                return;
            }
        }
        out.extend(overlay.clone().filter(|id| check(*id)));
        if let Some((c, lo, hi, _)) = pick_driver(store, group) {
            match c {
                Cmp::Id => out.extend(
                    store
                        .live
                        .range(id_range(lo, hi))
                        .filter(|(id, _)| check(**id))
                        .map(|(id, _)| *id),
                ),
                _ => {
                    let idx = if c == Cmp::Created {
                        &store.by_created
                    } else {
                        &store.by_updated
                    };
                    out.extend(
                        idx.range(pair_range(lo, hi))
                            .map(|(_, id)| *id)
                            .filter(|id| check(*id)),
                    );
                }
            }
            return;
        }
        out.extend(
            store
                .live
                .iter()
                .filter(|(id, rec)| {
                    store
                        .visible(**id, now)
                        .is_some_and(|v| std::ptr::eq(v, *rec))
                        && self.matches_group(data, kind, group, **id, rec)
                })
                .map(|(id, _)| *id),
        );
    }

    fn matches_group(
        &self,
        data: &PortalData,
        kind: ObjectKind,
        group: &[Filter],
        id: u64,
        rec: &Record,
    ) -> bool {
        if let Some(q) = &self.query {
            let reg = data.reg(kind);
            let hit = kind.query_props().iter().any(|p| {
                reg.index(p)
                    .and_then(|i| rec.get(i))
                    .is_some_and(|v| v.to_lowercase().contains(q.as_str()))
            }) || id.to_string() == *q;
            if !hit {
                return false;
            }
        }
        group.iter().all(|f| eval(f, data, kind, id, rec))
    }
}

#[derive(Debug, Clone, PartialEq)]
enum SortKey {
    Num(f64),
    Text(String),
    Missing,
}

impl SortKey {
    fn cmp_dir(&self, other: &Self, desc: bool) -> Ordering {
        let o = match (self, other) {
            (SortKey::Missing, SortKey::Missing) => return Ordering::Equal,
            (SortKey::Missing, _) => return Ordering::Greater,
            (_, SortKey::Missing) => return Ordering::Less,
            (SortKey::Num(a), SortKey::Num(b)) => a.partial_cmp(b).unwrap_or(Ordering::Equal),
            (SortKey::Text(a), SortKey::Text(b)) => a.cmp(b),
            (SortKey::Num(_), SortKey::Text(_)) => Ordering::Less,
            (SortKey::Text(_), SortKey::Num(_)) => Ordering::Greater,
        };
        if desc { o.reverse() } else { o }
    }
}

/// Numeric bounds a group puts on an indexed field (`Id`, `Created`, `Updated`).
fn bounds(group: &[Filter], c: Cmp) -> (Bound<i128>, Bound<i128>) {
    let mut lo: Bound<i128> = Bound::Unbounded;
    let mut hi: Bound<i128> = Bound::Unbounded;
    let num = |s: &str| -> Option<i128> {
        if c == Cmp::Id {
            s.trim().parse::<i128>().ok()
        } else {
            parse_time(s).map(i128::from)
        }
    };
    let tighten_lo = |lo: &mut Bound<i128>, b: Bound<i128>| {
        let cur = match *lo {
            Bound::Included(v) => Some(v),
            Bound::Excluded(v) => Some(v + 1),
            Bound::Unbounded => None,
        };
        let new = match b {
            Bound::Included(v) => v,
            Bound::Excluded(v) => v + 1,
            Bound::Unbounded => return,
        };
        if cur.is_none_or(|c| new > c) {
            *lo = Bound::Included(new);
        }
    };
    let tighten_hi = |hi: &mut Bound<i128>, b: Bound<i128>| {
        let cur = match *hi {
            Bound::Included(v) => Some(v),
            Bound::Excluded(v) => Some(v - 1),
            Bound::Unbounded => None,
        };
        let new = match b {
            Bound::Included(v) => v,
            Bound::Excluded(v) => v - 1,
            Bound::Unbounded => return,
        };
        if cur.is_none_or(|c| new < c) {
            *hi = Bound::Included(new);
        }
    };
    for f in group.iter().filter(|f| f.cmp == c) {
        let Some(v) = num(&f.value) else { continue };
        match f.op {
            Op::Eq => {
                tighten_lo(&mut lo, Bound::Included(v));
                tighten_hi(&mut hi, Bound::Included(v));
            }
            Op::Gt => tighten_lo(&mut lo, Bound::Excluded(v)),
            Op::Gte => tighten_lo(&mut lo, Bound::Included(v)),
            Op::Lt => tighten_hi(&mut hi, Bound::Excluded(v)),
            Op::Lte => tighten_hi(&mut hi, Bound::Included(v)),
            Op::Between => {
                tighten_lo(&mut lo, Bound::Included(v));
                if let Some(h) = num(&f.high) {
                    tighten_hi(&mut hi, Bound::Included(h));
                }
            }
            _ => {}
        }
    }
    // An empty range still needs valid bounds for BTree ranges.
    if let (Bound::Included(l), Bound::Included(h)) = (lo, hi)
        && l > h
    {
        return (Bound::Included(1), Bound::Included(0));
    }
    (lo, hi)
}

/// Id bounds that are always a valid (possibly empty) `BTreeMap` range.
fn id_range(lo: Bound<i128>, hi: Bound<i128>) -> (Bound<u64>, Bound<u64>) {
    let (a, b) = (to_id_bound(lo), to_id_bound(hi));
    let start = match a {
        Bound::Included(v) => Some(v),
        Bound::Excluded(v) => v.checked_add(1),
        Bound::Unbounded => Some(0),
    };
    let end = match b {
        Bound::Included(v) => Some(v),
        Bound::Excluded(v) => v.checked_sub(1),
        Bound::Unbounded => Some(u64::MAX),
    };
    match (start, end) {
        (Some(s), Some(e)) if s <= e => (a, b),
        _ => (Bound::Included(0), Bound::Excluded(0)),
    }
}

/// An entry of the created / last-modified indexes.
type TsId = (i64, u64);

/// `(timestamp, id)` bounds that are always a valid (possibly empty) `BTreeSet` range.
fn pair_range(lo: Bound<i128>, hi: Bound<i128>) -> (Bound<TsId>, Bound<TsId>) {
    let (a, b) = (to_pair_bound(lo, true), to_pair_bound(hi, false));
    let ok = match (a, b) {
        (Bound::Included(x), Bound::Included(y)) => x <= y,
        (Bound::Included(x) | Bound::Excluded(x), Bound::Excluded(y))
        | (Bound::Excluded(x), Bound::Included(y)) => x < y,
        _ => true,
    };
    if ok {
        (a, b)
    } else {
        (Bound::Included((0, 0)), Bound::Excluded((0, 0)))
    }
}

fn to_id_bound(b: Bound<i128>) -> Bound<u64> {
    match b {
        Bound::Included(v) => {
            Bound::Included(u64::try_from(v.clamp(0, i128::from(u64::MAX))).unwrap_or(0))
        }
        Bound::Excluded(v) => {
            Bound::Excluded(u64::try_from(v.clamp(0, i128::from(u64::MAX))).unwrap_or(0))
        }
        Bound::Unbounded => Bound::Unbounded,
    }
}

fn to_pair_bound(b: Bound<i128>, low: bool) -> Bound<(i64, u64)> {
    let clamp =
        |v: i128| i64::try_from(v.clamp(i128::from(i64::MIN), i128::from(i64::MAX))).unwrap_or(0);
    match b {
        Bound::Included(v) => Bound::Included((clamp(v), if low { 0 } else { u64::MAX })),
        Bound::Excluded(v) => Bound::Excluded((clamp(v), if low { u64::MAX } else { 0 })),
        Bound::Unbounded => Bound::Unbounded,
    }
}

fn eval(f: &Filter, data: &PortalData, kind: ObjectKind, id: u64, rec: &Record) -> bool {
    if let Cmp::Assoc(to) = f.cmp {
        let has = |v: &str| {
            v.trim()
                .parse::<u64>()
                .is_ok_and(|t| data.assoc.has((kind, id), (to, t)))
        };
        return match f.op {
            Op::Eq => has(&f.value),
            Op::Neq => !has(&f.value),
            Op::In => f.values.iter().any(|v| has(v)),
            Op::NotIn => !f.values.iter().any(|v| has(v)),
            Op::Has => !data.assoc.list((kind, id), to).is_empty(),
            Op::NotHas => data.assoc.list((kind, id), to).is_empty(),
            _ => false,
        };
    }
    let num_val: Option<f64>;
    let text_val: Option<&str>;
    match f.cmp {
        Cmp::Id => {
            num_val = Some(id as f64);
            text_val = None;
        }
        Cmp::Created => {
            num_val = Some(rec.created as f64);
            text_val = None;
        }
        Cmp::Updated => {
            num_val = Some(rec.updated as f64);
            text_val = None;
        }
        _ => {
            let v = f.prop.and_then(|p| rec.get(p));
            text_val = v;
            num_val = match (f.cmp, v) {
                (Cmp::Number, Some(v)) => v.trim().parse().ok(),
                (Cmp::Time, Some(v)) => parse_time(v).map(|t| t as f64),
                _ => None,
            };
        }
    }
    let present = num_val.is_some() || text_val.is_some_and(|t| !t.is_empty());
    match f.op {
        Op::Has => return present,
        Op::NotHas => return !present,
        _ => {}
    }
    let numeric = matches!(
        f.cmp,
        Cmp::Id | Cmp::Created | Cmp::Updated | Cmp::Number | Cmp::Time
    );
    let parse = |s: &str| -> Option<f64> {
        if matches!(f.cmp, Cmp::Created | Cmp::Updated | Cmp::Time) {
            parse_time(s).map(|t| t as f64)
        } else {
            s.trim().parse().ok()
        }
    };
    let text_eq = |a: &str, b: &str| {
        if f.cmp == Cmp::Enum {
            a == b
        } else {
            a.eq_ignore_ascii_case(b) || a.to_lowercase() == b.to_lowercase()
        }
    };
    let cmp_to = |other: &str| -> Option<Ordering> {
        if numeric {
            let a = num_val?;
            let b = parse(other)?;
            a.partial_cmp(&b)
        } else {
            let a = text_val?;
            Some(if f.cmp == Cmp::Enum {
                a.cmp(other)
            } else {
                a.to_lowercase().cmp(&other.to_lowercase())
            })
        }
    };
    let eq = |other: &str| -> bool {
        if numeric {
            cmp_to(other) == Some(Ordering::Equal)
        } else {
            text_val.is_some_and(|a| text_eq(a, other))
        }
    };
    let in_list = |vals: &[String]| -> bool {
        if numeric {
            vals.iter().any(|v| eq(v))
        } else if f.cmp == Cmp::Enum {
            text_val.is_some_and(|a| a.split(';').any(|part| vals.iter().any(|v| v == part)))
        } else {
            // String IN values must be lower-case to match.
            text_val.is_some_and(|a| {
                let low = a.to_lowercase();
                vals.contains(&low)
            })
        }
    };
    match f.op {
        Op::Eq => eq(&f.value),
        Op::Neq => !eq(&f.value),
        Op::Lt => cmp_to(&f.value) == Some(Ordering::Less),
        Op::Lte => matches!(cmp_to(&f.value), Some(Ordering::Less | Ordering::Equal)),
        Op::Gt => cmp_to(&f.value) == Some(Ordering::Greater),
        Op::Gte => matches!(cmp_to(&f.value), Some(Ordering::Greater | Ordering::Equal)),
        Op::Between => {
            matches!(cmp_to(&f.value), Some(Ordering::Greater | Ordering::Equal))
                && matches!(cmp_to(&f.high), Some(Ordering::Less | Ordering::Equal))
        }
        Op::In => in_list(&f.values),
        Op::NotIn => !in_list(&f.values),
        Op::Contains => text_val.is_some_and(|t| contains_token(t, &f.value)),
        Op::NotContains => !text_val.is_some_and(|t| contains_token(t, &f.value)),
        Op::Has | Op::NotHas => present,
    }
}

/// Token match: the value is split on whitespace and punctuation; `*` is a wildcard matched
/// against whole tokens and the whole value.
fn contains_token(text: &str, pattern: &str) -> bool {
    let text = text.to_lowercase();
    let pattern = pattern.to_lowercase();
    if pattern.contains('*') {
        return wildcard(&text, &pattern)
            || text
                .split(|c: char| c.is_whitespace() || c == ';' || c == ',')
                .any(|t| wildcard(t, &pattern));
    }
    text == pattern
        || text
            .split(|c: char| !c.is_alphanumeric())
            .filter(|t| !t.is_empty())
            .any(|t| t == pattern)
        || text
            .split(|c: char| c.is_whitespace() || c == ';' || c == ',')
            .any(|t| t == pattern)
}

fn wildcard(text: &str, pattern: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    let mut pos = 0usize;
    for (i, part) in parts.iter().enumerate() {
        if part.is_empty() {
            continue;
        }
        if i == 0 {
            if !text.starts_with(part) {
                return false;
            }
            pos = part.len();
        } else if i == parts.len() - 1 {
            return text.len() >= pos + part.len() && text.ends_with(part);
        } else {
            match text[pos..].find(part) {
                Some(p) => pos += p + part.len(),
                None => return false,
            }
        }
    }
    parts
        .last()
        .is_none_or(|l| l.is_empty() || text.ends_with(l))
}

/// Ranges on an index are sized up to this many entries when choosing a driver.
const DRIVER_CAP: usize = 20_000;

fn parses(f: &Filter, v: &str) -> bool {
    if f.cmp == Cmp::Id {
        v.trim().parse::<i128>().is_ok()
    } else {
        parse_time(v).is_some()
    }
}

/// Whether a filter is fully expressed by its field's index bounds.
fn covered(f: &Filter) -> bool {
    matches!(
        f.op,
        Op::Eq | Op::Gt | Op::Gte | Op::Lt | Op::Lte | Op::Between
    ) && matches!(f.cmp, Cmp::Id | Cmp::Created | Cmp::Updated)
        && parses(f, &f.value)
        && (f.op != Op::Between || parses(f, &f.high))
}

/// Whether a created/updated filter holds for every live record (e.g. `lastmodifieddate GTE 0`).
fn vacuous(store: &ObjectStore, f: &Filter) -> bool {
    if !covered(f) || !matches!(f.cmp, Cmp::Created | Cmp::Updated) {
        return false;
    }
    let idx = if f.cmp == Cmp::Created {
        &store.by_created
    } else {
        &store.by_updated
    };
    let (Some(min), Some(max)) = (idx.first(), idx.last()) else {
        return true;
    };
    let (lo, hi) = bounds(std::slice::from_ref(f), f.cmp);
    let lo_ok = match lo {
        Bound::Included(v) => v <= i128::from(min.0),
        Bound::Excluded(v) => v < i128::from(min.0),
        Bound::Unbounded => true,
    };
    let hi_ok = match hi {
        Bound::Included(v) => v >= i128::from(max.0),
        Bound::Excluded(v) => v > i128::from(max.0),
        Bound::Unbounded => true,
    };
    lo_ok && hi_ok
}

fn has_point_lookup(data: &PortalData, kind: ObjectKind, group: &[Filter]) -> bool {
    group.iter().any(|f| {
        (f.cmp == Cmp::Id && matches!(f.op, Op::Eq | Op::In))
            || (f.op == Op::Eq
                && f.cmp == Cmp::Text
                && f.prop
                    .is_some_and(|p| data.ukeys[kind.index()].uniques.contains(&p)))
    })
}

/// An index range chosen to drive candidate selection: field, bounds, entries (capped).
type Driver = (Cmp, Bound<i128>, Bound<i128>, usize);

/// The indexed range with the fewest entries (counted up to [`DRIVER_CAP`]).
fn pick_driver(store: &ObjectStore, group: &[Filter]) -> Option<Driver> {
    let mut best: Option<Driver> = None;
    for c in [Cmp::Id, Cmp::Updated, Cmp::Created] {
        let (lo, hi) = bounds(group, c);
        if matches!((lo, hi), (Bound::Unbounded, Bound::Unbounded)) {
            continue;
        }
        let n = match c {
            Cmp::Id => usize::try_from({
                let (a, b) = id_range(lo, hi);
                store.live_ids.count(a, b)
            })
            .unwrap_or(usize::MAX)
            .min(DRIVER_CAP),
            _ => {
                let idx = if c == Cmp::Created {
                    &store.by_created
                } else {
                    &store.by_updated
                };
                idx.range(pair_range(lo, hi)).take(DRIVER_CAP).count()
            }
        };
        if best.is_none_or(|b| n < b.3) {
            best = Some((c, lo, hi, n));
        }
    }
    best
}
