//! In-memory storage of one portal: records per object type with compact property storage and
//! secondary indexes (last-modified, created, unique values), merge aliases, the search-lag
//! overlay, and associations.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::model::{ObjectKind, PropertyRegistry};

/// One CRM record. Timestamps are epoch ms; properties are `(registry index, value)` pairs
/// sorted by index. Computed properties (`hs_object_id`, create and modified dates) are not in
/// `props`.
#[derive(Debug, Clone, Default)]
pub struct Record {
    /// Creation time.
    pub created: i64,
    /// Last modification time.
    pub updated: i64,
    /// When archived (0 while live).
    pub archived_at: i64,
    /// Property values.
    pub props: Vec<(u16, Box<str>)>,
}

impl Record {
    /// The stored value of property `idx`.
    pub fn get(&self, idx: u16) -> Option<&str> {
        self.props
            .binary_search_by_key(&idx, |(i, _)| *i)
            .ok()
            .map(|p| &*self.props[p].1)
    }

    /// Sets (`Some`) or clears (`None`) a value; returns whether it changed.
    pub fn set(&mut self, idx: u16, value: Option<&str>) -> bool {
        match (self.props.binary_search_by_key(&idx, |(i, _)| *i), value) {
            (Ok(p), Some(v)) => {
                if &*self.props[p].1 == v {
                    false
                } else {
                    self.props[p].1 = v.into();
                    true
                }
            }
            (Ok(p), None) => {
                self.props.remove(p);
                true
            }
            (Err(p), Some(v)) => {
                self.props.insert(p, (idx, v.into()));
                true
            }
            (Err(_), None) => false,
        }
    }
}

/// The pre-write state a search still sees until the write is indexed.
#[derive(Debug, Clone)]
pub struct Overlay {
    /// When the current live state becomes searchable.
    pub visible_at: i64,
    /// What search sees until then (`None`: not there).
    pub old: Option<Record>,
}

/// All records of one object type.
#[derive(Debug, Default)]
pub struct ObjectStore {
    /// Live records by id.
    pub live: BTreeMap<u64, Record>,
    /// Archived records by id.
    pub archived: BTreeMap<u64, Record>,
    /// `(updated, id)` of live records.
    pub by_updated: BTreeSet<(i64, u64)>,
    /// `(created, id)` of live records.
    pub by_created: BTreeSet<(i64, u64)>,
    /// Unique property index → lower-cased value → id (live records).
    pub unique: HashMap<u16, HashMap<Box<str>, u64>>,
    /// Former ids of merged records → the surviving id.
    pub aliases: HashMap<u64, u64>,
    /// Next id to hand out.
    pub next_id: u64,
    /// Search-lag overlay.
    pub overlay: HashMap<u64, Overlay>,
    /// Live ids as a Fenwick tree, for O(log n) counts of id ranges.
    pub live_ids: LiveIdCounter,
}

/// Counts live ids in any id range in O(log n). Ids are handed out densely from a base, so
/// position `id - base` indexes a Fenwick tree that doubles as it grows.
#[derive(Debug, Clone)]
pub struct LiveIdCounter {
    base: u64,
    tree: Vec<u32>,
    total: u64,
}

impl Default for LiveIdCounter {
    fn default() -> Self {
        Self::new(1)
    }
}

impl LiveIdCounter {
    /// An empty counter for ids from `base` up.
    pub fn new(base: u64) -> Self {
        Self {
            base,
            tree: vec![0; 1025],
            total: 0,
        }
    }

    fn cap(&self) -> usize {
        self.tree.len() - 1
    }

    fn pos(&self, id: u64) -> Option<usize> {
        id.checked_sub(self.base)
            .and_then(|p| usize::try_from(p).ok())
            .map(|p| p + 1)
    }

    fn grow_to(&mut self, pos: usize) {
        while pos > self.cap() {
            // Doubling a Fenwick tree whose size is a power of two: the new top node covers
            // everything, every other new node covers only (empty) new positions.
            let n = self.cap();
            self.tree.resize(2 * n + 1, 0);
            self.tree[2 * n] = u32::try_from(self.total).unwrap_or(u32::MAX);
        }
    }

    /// Marks `id` live (`+1`) or not (`-1`).
    pub fn add(&mut self, id: u64, delta: i32) {
        let Some(mut i) = self.pos(id) else { return };
        self.grow_to(i);
        self.total = self.total.saturating_add_signed(i64::from(delta));
        while i <= self.cap() {
            self.tree[i] = self.tree[i].saturating_add_signed(delta);
            i += i & i.wrapping_neg();
        }
    }

    /// Live ids `<= id`.
    pub fn count_le(&self, id: u64) -> u64 {
        let Some(pos) = self.pos(id) else { return 0 };
        let mut i = pos.min(self.cap());
        let mut sum = 0u64;
        while i > 0 {
            sum += u64::from(self.tree[i]);
            i -= i & i.wrapping_neg();
        }
        sum
    }

    /// Live ids within the bounds.
    pub fn count(&self, lo: std::ops::Bound<u64>, hi: std::ops::Bound<u64>) -> u64 {
        use std::ops::Bound;
        let upper = match hi {
            Bound::Included(h) => self.count_le(h),
            Bound::Excluded(0) => 0,
            Bound::Excluded(h) => self.count_le(h - 1),
            Bound::Unbounded => self.total,
        };
        let below = match lo {
            Bound::Included(0) | Bound::Unbounded => 0,
            Bound::Included(l) => self.count_le(l - 1),
            Bound::Excluded(l) => self.count_le(l),
        };
        upper.saturating_sub(below)
    }
}

impl ObjectStore {
    /// An empty store whose ids start at `first_id`.
    pub fn new(first_id: u64) -> Self {
        Self {
            next_id: first_id,
            ..Self::default()
        }
    }

    /// Hands out a fresh id.
    pub fn alloc_id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    /// Follows merge aliases to the surviving id.
    pub fn resolve(&self, id: u64) -> u64 {
        let mut cur = id;
        for _ in 0..64 {
            match self.aliases.get(&cur) {
                Some(&next) => cur = next,
                None => break,
            }
        }
        cur
    }

    /// The unique-value index keys of a record (`hs_additional_emails` feeds the email index).
    fn unique_keys(
        rec: &Record,
        uniques: &[u16],
        extra_email: Option<(u16, u16)>,
    ) -> Vec<(u16, Box<str>)> {
        let mut out = Vec::new();
        for &u in uniques {
            if let Some(v) = rec.get(u) {
                out.push((u, v.to_lowercase().into_boxed_str()));
            }
        }
        if let Some((email, additional)) = extra_email
            && let Some(v) = rec.get(additional)
        {
            for part in v.split(';').filter(|p| !p.is_empty()) {
                out.push((email, part.to_lowercase().into_boxed_str()));
            }
        }
        out
    }

    /// Adds a live record and its index entries.
    pub fn insert_live(&mut self, id: u64, rec: Record, keys: &UniqueKeys) {
        self.by_updated.insert((rec.updated, id));
        self.by_created.insert((rec.created, id));
        for (u, v) in Self::unique_keys(&rec, &keys.uniques, keys.email_pair) {
            self.unique.entry(u).or_default().insert(v, id);
        }
        if self.live.insert(id, rec).is_none() {
            self.live_ids.add(id, 1);
        }
    }

    /// Removes a live record and its index entries.
    pub fn remove_live(&mut self, id: u64, keys: &UniqueKeys) -> Option<Record> {
        let rec = self.live.remove(&id)?;
        self.live_ids.add(id, -1);
        self.by_updated.remove(&(rec.updated, id));
        self.by_created.remove(&(rec.created, id));
        for (u, v) in Self::unique_keys(&rec, &keys.uniques, keys.email_pair) {
            if let Some(m) = self.unique.get_mut(&u)
                && m.get(&v) == Some(&id)
            {
                m.remove(&v);
            }
        }
        Some(rec)
    }

    /// Records the pre-write state for search lag. Call before changing `id`.
    pub fn note_write(&mut self, id: u64, now: i64, lag_ms: u64) {
        if lag_ms == 0 {
            return;
        }
        let visible_at = now.saturating_add(i64::try_from(lag_ms).unwrap_or(i64::MAX));
        match self.overlay.get_mut(&id) {
            Some(o) if o.visible_at > now => o.visible_at = visible_at,
            _ => {
                let old = self.live.get(&id).cloned();
                self.overlay.insert(id, Overlay { visible_at, old });
            }
        }
    }

    /// Drops overlay entries that have become visible.
    pub fn expire_overlay(&mut self, now: i64) {
        if !self.overlay.is_empty() {
            self.overlay.retain(|_, o| o.visible_at > now);
        }
    }

    /// The state search sees for `id`.
    pub fn visible(&self, id: u64, now: i64) -> Option<&Record> {
        match self.overlay.get(&id) {
            Some(o) if o.visible_at > now => o.old.as_ref(),
            _ => self.live.get(&id),
        }
    }

    /// The live record holding a unique value (case-insensitive).
    pub fn find_unique(&self, idx: u16, value: &str) -> Option<u64> {
        self.unique
            .get(&idx)?
            .get(value.to_lowercase().as_str())
            .copied()
    }
}

/// Which properties feed unique indexes in one object type.
#[derive(Debug, Clone, Default)]
pub struct UniqueKeys {
    /// Unique properties except `hs_object_id`.
    pub uniques: Vec<u16>,
    /// Contacts: `(email, hs_additional_emails)`.
    pub email_pair: Option<(u16, u16)>,
}

impl UniqueKeys {
    /// Derives the keys from a registry.
    pub fn from_registry(kind: ObjectKind, reg: &PropertyRegistry) -> Self {
        let uniques = reg
            .all()
            .filter(|d| d.unique && d.name != "hs_object_id" && !d.archived)
            .filter_map(|d| reg.index(&d.name))
            .collect();
        let email_pair = match kind {
            ObjectKind::Contact => reg.index("email").zip(reg.index("hs_additional_emails")),
            _ => None,
        };
        Self {
            uniques,
            email_pair,
        }
    }
}

/// A HubSpot-defined association type.
#[derive(Debug, Clone, Copy)]
pub struct AssocType {
    /// `associationTypeId`.
    pub id: u32,
    /// From object kind.
    pub from: ObjectKind,
    /// To object kind.
    pub to: ObjectKind,
    /// v4 label (`None` for unlabeled).
    pub label: Option<&'static str>,
    /// v3 `type` name.
    pub v3_name: &'static str,
    /// The primary association (implies the unlabeled one).
    pub primary: bool,
    /// The type id of the reverse direction.
    pub inverse: u32,
}

use ObjectKind::{Company as Co, Contact as Ct, Deal as Dl};

/// Default (HUBSPOT_DEFINED) association types from the digest.
pub const ASSOC_TYPES: &[AssocType] = &[
    AssocType {
        id: 279,
        from: Ct,
        to: Co,
        label: None,
        v3_name: "contact_to_company_unlabeled",
        primary: false,
        inverse: 280,
    },
    AssocType {
        id: 1,
        from: Ct,
        to: Co,
        label: Some("Primary"),
        v3_name: "contact_to_company",
        primary: true,
        inverse: 2,
    },
    AssocType {
        id: 280,
        from: Co,
        to: Ct,
        label: None,
        v3_name: "company_to_contact_unlabeled",
        primary: false,
        inverse: 279,
    },
    AssocType {
        id: 2,
        from: Co,
        to: Ct,
        label: Some("Primary"),
        v3_name: "company_to_contact",
        primary: true,
        inverse: 1,
    },
    AssocType {
        id: 4,
        from: Ct,
        to: Dl,
        label: None,
        v3_name: "contact_to_deal",
        primary: false,
        inverse: 3,
    },
    AssocType {
        id: 3,
        from: Dl,
        to: Ct,
        label: None,
        v3_name: "deal_to_contact",
        primary: false,
        inverse: 4,
    },
    AssocType {
        id: 341,
        from: Dl,
        to: Co,
        label: None,
        v3_name: "deal_to_company_unlabeled",
        primary: false,
        inverse: 342,
    },
    AssocType {
        id: 5,
        from: Dl,
        to: Co,
        label: Some("Primary"),
        v3_name: "deal_to_company",
        primary: true,
        inverse: 6,
    },
    AssocType {
        id: 342,
        from: Co,
        to: Dl,
        label: None,
        v3_name: "company_to_deal_unlabeled",
        primary: false,
        inverse: 341,
    },
    AssocType {
        id: 6,
        from: Co,
        to: Dl,
        label: Some("Primary"),
        v3_name: "company_to_deal",
        primary: true,
        inverse: 5,
    },
    AssocType {
        id: 449,
        from: Ct,
        to: Ct,
        label: None,
        v3_name: "contact_to_contact",
        primary: false,
        inverse: 449,
    },
    AssocType {
        id: 450,
        from: Co,
        to: Co,
        label: None,
        v3_name: "company_to_company",
        primary: false,
        inverse: 450,
    },
    AssocType {
        id: 451,
        from: Dl,
        to: Dl,
        label: None,
        v3_name: "deal_to_deal",
        primary: false,
        inverse: 451,
    },
    AssocType {
        id: 13,
        from: Co,
        to: Co,
        label: Some("Child Company"),
        v3_name: "parent_to_child_company",
        primary: false,
        inverse: 14,
    },
    AssocType {
        id: 14,
        from: Co,
        to: Co,
        label: Some("Parent Company"),
        v3_name: "child_to_parent_company",
        primary: false,
        inverse: 13,
    },
];

/// Looks up an association type.
pub fn assoc_type(id: u32) -> Option<&'static AssocType> {
    ASSOC_TYPES.iter().find(|t| t.id == id)
}

/// The unlabeled default type between two kinds.
pub fn default_assoc(from: ObjectKind, to: ObjectKind) -> &'static AssocType {
    ASSOC_TYPES
        .iter()
        .find(|t| t.from == from && t.to == to && t.label.is_none())
        .unwrap_or(&ASSOC_TYPES[0])
}

/// A record: `(kind, id)`.
pub type RecordKey = (ObjectKind, u64);

/// Directed association edges: `(kind, id)` → `(kind, id)` → type ids.
#[derive(Debug, Default)]
pub struct AssocStore {
    edges: HashMap<RecordKey, BTreeMap<RecordKey, Vec<u32>>>,
}

/// An association type that was added or removed, for webhook emission.
#[derive(Debug, Clone, Copy)]
pub struct AssocChange {
    /// The directed type.
    pub ty: &'static AssocType,
    /// From id.
    pub from: u64,
    /// To id.
    pub to: u64,
}

impl AssocStore {
    /// Adds a directed type and its inverse (and the unlabeled type a primary implies).
    /// Returns the directed types newly added (both directions).
    pub fn add(&mut self, from: u64, to: u64, ty: &'static AssocType) -> Vec<AssocChange> {
        let mut added = Vec::new();
        let mut types = vec![ty];
        if ty.primary {
            types.push(default_assoc(ty.from, ty.to));
        }
        for t in types {
            for (t, f, o) in [(t, from, to)]
                .into_iter()
                .chain(assoc_type(t.inverse).map(|i| (i, to, from)))
            {
                let list = self
                    .edges
                    .entry((t.from, f))
                    .or_default()
                    .entry((t.to, o))
                    .or_default();
                if !list.contains(&t.id) {
                    list.push(t.id);
                    added.push(AssocChange {
                        ty: t,
                        from: f,
                        to: o,
                    });
                }
            }
        }
        added
    }

    /// Removes every type between a pair in both directions; returns what was removed.
    pub fn remove_pair(&mut self, a: (ObjectKind, u64), b: (ObjectKind, u64)) -> Vec<AssocChange> {
        let mut removed = Vec::new();
        for (x, y) in [(a, b), (b, a)] {
            if let Some(m) = self.edges.get_mut(&x) {
                if let Some(ids) = m.remove(&y) {
                    removed.extend(ids.iter().filter_map(|i| assoc_type(*i)).map(|t| {
                        AssocChange {
                            ty: t,
                            from: x.1,
                            to: y.1,
                        }
                    }));
                }
                if m.is_empty() {
                    self.edges.remove(&x);
                }
            }
        }
        removed
    }

    /// Associations of a record towards `to` kind: `(to id, type ids)`, ordered by id.
    pub fn list(&self, from: (ObjectKind, u64), to: ObjectKind) -> Vec<(u64, Vec<u32>)> {
        self.edges
            .get(&from)
            .map(|m| {
                m.range((to, 0)..=(to, u64::MAX))
                    .map(|((_, id), t)| (*id, t.clone()))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Whether a record has any association to `(to, to_id)`.
    pub fn has(&self, from: (ObjectKind, u64), to: (ObjectKind, u64)) -> bool {
        self.edges.get(&from).is_some_and(|m| m.contains_key(&to))
    }

    /// Moves every association of `old` onto `new` (after a merge).
    pub fn repoint(&mut self, kind: ObjectKind, old: u64, new: u64) {
        if old == new {
            return;
        }
        let Some(out) = self.edges.remove(&(kind, old)) else {
            return;
        };
        for ((tk, tid), types) in out {
            if tk == kind && tid == new {
                continue;
            }
            if let Some(back) = self.edges.get_mut(&(tk, tid))
                && let Some(rev) = back.remove(&(kind, old))
            {
                let e = back.entry((kind, new)).or_default();
                for t in rev {
                    if !e.contains(&t) {
                        e.push(t);
                    }
                }
            }
            let e = self
                .edges
                .entry((kind, new))
                .or_default()
                .entry((tk, tid))
                .or_default();
            for t in types {
                if !e.contains(&t) {
                    e.push(t);
                }
            }
        }
    }

    /// All edges (for dumps): `(from kind, from id, to kind, to id, type ids)`.
    pub fn all(&self) -> Vec<(ObjectKind, u64, ObjectKind, u64, Vec<u32>)> {
        let mut v: Vec<_> = self
            .edges
            .iter()
            .flat_map(|((fk, fid), m)| {
                m.iter()
                    .map(move |((tk, tid), t)| (*fk, *fid, *tk, *tid, t.clone()))
            })
            .collect();
        v.sort_by_key(|e| (e.0, e.1, e.2, e.3));
        v
    }
}

#[cfg(test)]
mod tests {
    use super::LiveIdCounter;
    use std::ops::Bound::{Excluded, Included, Unbounded};

    #[test]
    fn live_id_counter_counts_ranges_across_growth() {
        let mut c = LiveIdCounter::new(101);
        let ids: Vec<u64> = (101..5000).filter(|i| i % 3 != 0).collect();
        for id in &ids {
            c.add(*id, 1);
        }
        c.add(200, -1);
        let live = |lo: u64, hi: u64| {
            ids.iter()
                .filter(|i| **i >= lo && **i <= hi && **i != 200)
                .count() as u64
        };
        assert_eq!(c.count(Unbounded, Unbounded), live(0, u64::MAX));
        assert_eq!(c.count(Excluded(150), Unbounded), live(151, u64::MAX));
        assert_eq!(c.count(Included(101), Included(1500)), live(101, 1500));
        assert_eq!(c.count(Included(4000), Excluded(4500)), live(4000, 4499));
        assert_eq!(c.count(Included(0), Included(50)), 0);
        assert_eq!(c.count(Included(9000), Unbounded), 0);
    }
}
