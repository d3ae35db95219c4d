//! The one merge: a three-way, field-level merge of a local and a remote state against the
//! last synced state (the base).
//!
//! Every change from either side goes through [`merge`]: inbound webhooks, reconciliation passes
//! and first-sync linking. For each field:
//!
//! | local vs base | remote vs base | result |
//! |---|---|---|
//! | same | same | nothing to do |
//! | changed | same | local value, pushed to HubSpot |
//! | same | changed | remote value, written locally |
//! | changed | changed, equal values | settled, nothing to write |
//! | changed | changed, different values | a [`Conflict`], settled by the field's [`ConflictPolicy`] |
//!
//! With no base (the record was never synced, e.g. linking on first sync), a field present on
//! one side only is taken from that side, and differing values on both sides are a conflict.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::record::{Changes, FieldMap};

/// Which side a value came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    /// The app's database.
    Local,
    /// HubSpot.
    Remote,
}

/// How a true conflict (both sides changed one field to different values) is settled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConflictPolicy {
    /// HubSpot's value wins.
    RemoteWins,
    /// The app's value wins.
    LocalWins,
    /// The later change wins; on a tie, HubSpot's value.
    #[default]
    LatestWins,
}

/// The conflict policy of one object type: a default and per-field overrides.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicySet {
    /// The policy for fields without an override.
    #[serde(default)]
    pub default: ConflictPolicy,
    /// Per-field overrides, keyed by unified field name.
    #[serde(default)]
    pub fields: BTreeMap<String, ConflictPolicy>,
}

impl PolicySet {
    /// The policy for one field.
    pub fn for_field(&self, field: &str) -> ConflictPolicy {
        self.fields.get(field).copied().unwrap_or(self.default)
    }
}

/// A field both sides changed to different values, and how it was settled.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Conflict {
    /// The unified field name.
    pub field: String,
    /// The last synced value (`null` if none).
    pub base: Value,
    /// The app's value.
    pub local: Value,
    /// When the app's value was written (epoch ms).
    pub local_ts: i64,
    /// HubSpot's value.
    pub remote: Value,
    /// When HubSpot's value was written (epoch ms).
    pub remote_ts: i64,
    /// The policy that settled it.
    pub policy: ConflictPolicy,
    /// The side whose value won.
    pub winner: Side,
}

/// The inputs of one merge.
#[derive(Debug, Clone, Copy)]
pub struct MergeInput<'a> {
    /// The last synced state; `None` if the record was never synced.
    pub base: Option<&'a FieldMap>,
    /// The app's current state.
    pub local: &'a FieldMap,
    /// When the app last changed the record (epoch ms).
    pub local_ts: i64,
    /// HubSpot's state. With `remote_scope` set, only those fields are known.
    pub remote: &'a FieldMap,
    /// When HubSpot last changed the record (epoch ms), for fields without their own time.
    pub remote_ts: i64,
    /// Per-field HubSpot change times (epoch ms), e.g. each propertyChange's `occurredAt`.
    pub remote_field_ts: Option<&'a BTreeMap<String, i64>>,
    /// When set, only these fields of `remote` are known (a partial update, such as a set of
    /// propertyChange events); every other field is taken as unchanged remotely.
    pub remote_scope: Option<&'a BTreeSet<String>>,
    /// How conflicts are settled.
    pub policy: &'a PolicySet,
}

/// What a merge decided.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MergeOutcome {
    /// The state both sides hold once the changes below are applied: the new base.
    pub merged: FieldMap,
    /// Fields to write to the app's tables (`null` clears).
    pub local_changes: Changes,
    /// Fields to write to HubSpot (`null` clears).
    pub remote_changes: Changes,
    /// True conflicts, each settled by policy.
    pub conflicts: Vec<Conflict>,
    /// Whether the remote state brought nothing new: every known remote field equals the base
    /// (or, with no base, the local value). Such an inbound state is an echo or a duplicate.
    pub remote_unchanged: bool,
}

impl MergeOutcome {
    /// Whether the merge changes nothing on either side.
    pub fn is_noop(&self) -> bool {
        self.local_changes.is_empty() && self.remote_changes.is_empty()
    }
}

/// Merges `input.local` and `input.remote` against `input.base`, field by field.
pub fn merge(input: MergeInput<'_>) -> MergeOutcome {
    let empty = FieldMap::new();
    let base = input.base.unwrap_or(&empty);
    let has_base = input.base.is_some();

    // Every field that any side has a value for, in name order: the three sorted maps are
    // walked side by side, so no field is looked up by name.
    let remote_fields: Box<dyn Iterator<Item = (&str, &Value)>> = match input.remote_scope {
        Some(scope) => Box::new(
            scope
                .iter()
                .map(|field| (field.as_str(), input.remote.get(field))),
        ),
        None => Box::new(input.remote.iter()),
    };
    let mut base_fields = base.iter().peekable();
    let mut local_fields = input.local.iter().peekable();
    let mut remote_fields = remote_fields.peekable();

    let mut out = MergeOutcome {
        remote_unchanged: true,
        ..MergeOutcome::default()
    };
    let mut merged: Vec<(String, Value)> = Vec::new();

    while let Some(field) = [
        base_fields.peek().map(|(k, _)| *k),
        local_fields.peek().map(|(k, _)| *k),
        remote_fields.peek().map(|(k, _)| *k),
    ]
    .into_iter()
    .flatten()
    .min()
    {
        let b = base_fields
            .next_if(|(k, _)| *k == field)
            .map_or(&NULL, |(_, v)| v);
        let l = local_fields
            .next_if(|(k, _)| *k == field)
            .map_or(&NULL, |(_, v)| v);
        let remote = remote_fields.next_if(|(k, _)| *k == field).map(|(_, v)| v);
        // Without a scope every remote field is known (absent means no value); with one, only
        // the scope's. An unknown remote field is taken as unchanged remotely: the base, or
        // with no base the local value (so nothing is pushed or overwritten on its account).
        let remote_known = input.remote_scope.is_none() || remote.is_some();
        let r = match remote {
            Some(r) => r,
            None if remote_known => &NULL,
            None if has_base => b,
            None => l,
        };

        let chosen: &Value = if has_base {
            let local_changed = l != b;
            let remote_changed = r != b;
            if remote_changed {
                out.remote_unchanged = false;
            }
            match (local_changed, remote_changed) {
                (false, false) => b,
                (true, false) => l,
                (false, true) => r,
                (true, true) if l == r => l,
                (true, true) => settle(&input, field, b, l, r, &mut out.conflicts),
            }
        } else if l == r || r.is_null() {
            l
        } else if l.is_null() {
            out.remote_unchanged = false;
            r
        } else {
            out.remote_unchanged = false;
            settle(&input, field, b, l, r, &mut out.conflicts)
        };

        if chosen != l {
            out.local_changes.insert(field.to_owned(), chosen.clone());
        }
        if chosen != r || (!remote_known && chosen != b) {
            out.remote_changes.insert(field.to_owned(), chosen.clone());
        }
        if !chosen.is_null() {
            merged.push((field.to_owned(), chosen.clone()));
        }
    }
    // In name order already, so the map is built in one pass.
    out.merged = merged.into_iter().collect();
    out
}

/// The value of a field no side has.
static NULL: Value = Value::Null;

fn settle<'v>(
    input: &MergeInput<'_>,
    field: &str,
    base: &Value,
    local: &'v Value,
    remote: &'v Value,
    conflicts: &mut Vec<Conflict>,
) -> &'v Value {
    let policy = input.policy.for_field(field);
    let remote_ts = input
        .remote_field_ts
        .and_then(|m| m.get(field).copied())
        .unwrap_or(input.remote_ts);
    let winner = match policy {
        ConflictPolicy::RemoteWins => Side::Remote,
        ConflictPolicy::LocalWins => Side::Local,
        ConflictPolicy::LatestWins if input.local_ts > remote_ts => Side::Local,
        ConflictPolicy::LatestWins => Side::Remote,
    };
    conflicts.push(Conflict {
        field: field.to_owned(),
        base: base.clone(),
        local: local.clone(),
        local_ts: input.local_ts,
        remote: remote.clone(),
        remote_ts,
        policy,
        winner,
    });
    match winner {
        Side::Local => local,
        Side::Remote => remote,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn map(pairs: &[(&str, &str)]) -> FieldMap {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), json!(v)))
            .collect()
    }

    fn run(
        base: Option<&FieldMap>,
        local: &FieldMap,
        remote: &FieldMap,
        policy: &PolicySet,
    ) -> MergeOutcome {
        merge(MergeInput {
            base,
            local,
            local_ts: 100,
            remote,
            remote_ts: 200,
            remote_field_ts: None,
            remote_scope: None,
            policy,
        })
    }

    #[test]
    fn one_sided_changes_flow_to_the_other_side() {
        let base = map(&[("a", "1"), ("b", "1")]);
        let local = map(&[("a", "L"), ("b", "1")]);
        let remote = map(&[("a", "1"), ("b", "R")]);
        let out = run(Some(&base), &local, &remote, &PolicySet::default());
        assert_eq!(
            out.remote_changes,
            BTreeMap::from([("a".into(), json!("L"))])
        );
        assert_eq!(
            out.local_changes,
            BTreeMap::from([("b".into(), json!("R"))])
        );
        assert!(out.conflicts.is_empty());
        assert_eq!(out.merged, map(&[("a", "L"), ("b", "R")]));
    }

    #[test]
    fn echo_of_base_is_a_noop() {
        let base = map(&[("a", "1")]);
        let out = run(Some(&base), &base, &base, &PolicySet::default());
        assert!(out.is_noop());
        assert!(out.remote_unchanged);
    }

    #[test]
    fn same_change_on_both_sides_is_settled_without_conflict() {
        let base = map(&[("a", "1")]);
        let both = map(&[("a", "2")]);
        let out = run(Some(&base), &both, &both, &PolicySet::default());
        assert!(out.is_noop());
        assert!(out.conflicts.is_empty());
        assert_eq!(out.merged, both);
    }

    #[test]
    fn each_policy_settles_a_true_conflict() {
        let base = map(&[("a", "1")]);
        let local = map(&[("a", "L")]);
        let remote = map(&[("a", "R")]);
        let cases = [
            (ConflictPolicy::RemoteWins, "R", Side::Remote),
            (ConflictPolicy::LocalWins, "L", Side::Local),
            // remote_ts 200 > local_ts 100
            (ConflictPolicy::LatestWins, "R", Side::Remote),
        ];
        for (policy, value, winner) in cases {
            let set = PolicySet {
                default: policy,
                fields: BTreeMap::new(),
            };
            let out = run(Some(&base), &local, &remote, &set);
            assert_eq!(out.merged.get("a"), &json!(value), "{policy:?}");
            assert_eq!(out.conflicts.len(), 1);
            assert_eq!(out.conflicts[0].winner, winner);
            assert_eq!(out.conflicts[0].base, json!("1"));
        }
    }

    #[test]
    fn latest_wins_uses_per_field_remote_times() {
        let base = map(&[("a", "1")]);
        let local = map(&[("a", "L")]);
        let remote = map(&[("a", "R")]);
        let times = BTreeMap::from([("a".to_owned(), 50)]);
        let out = merge(MergeInput {
            base: Some(&base),
            local: &local,
            local_ts: 100,
            remote: &remote,
            remote_ts: 200,
            remote_field_ts: Some(&times),
            remote_scope: None,
            policy: &PolicySet::default(),
        });
        assert_eq!(out.merged.get("a"), &json!("L"));
        assert_eq!(out.remote_changes.get("a"), Some(&json!("L")));
    }

    #[test]
    fn per_field_policy_overrides_the_default() {
        let base = map(&[("a", "1"), ("b", "1")]);
        let local = map(&[("a", "L"), ("b", "L")]);
        let remote = map(&[("a", "R"), ("b", "R")]);
        let set = PolicySet {
            default: ConflictPolicy::RemoteWins,
            fields: BTreeMap::from([("b".to_owned(), ConflictPolicy::LocalWins)]),
        };
        let out = run(Some(&base), &local, &remote, &set);
        assert_eq!(out.merged, map(&[("a", "R"), ("b", "L")]));
    }

    #[test]
    fn a_cleared_field_is_a_change() {
        let base = map(&[("a", "1")]);
        let local = FieldMap::new();
        let out = run(Some(&base), &local, &base, &PolicySet::default());
        assert_eq!(
            out.remote_changes,
            BTreeMap::from([("a".into(), Value::Null)])
        );
        assert!(!out.merged.contains("a"));
    }

    #[test]
    fn partial_remote_leaves_unknown_fields_alone() {
        let base = map(&[("a", "1"), ("b", "1")]);
        let local = map(&[("a", "1"), ("b", "L")]);
        // A propertyChange for `a` only: `b` is unknown remotely, not cleared.
        let remote = map(&[("a", "R")]);
        let scope = BTreeSet::from(["a".to_owned()]);
        let out = merge(MergeInput {
            base: Some(&base),
            local: &local,
            local_ts: 100,
            remote: &remote,
            remote_ts: 200,
            remote_field_ts: None,
            remote_scope: Some(&scope),
            policy: &PolicySet::default(),
        });
        assert_eq!(
            out.local_changes,
            BTreeMap::from([("a".into(), json!("R"))])
        );
        assert_eq!(
            out.remote_changes,
            BTreeMap::from([("b".into(), json!("L"))])
        );
        assert_eq!(out.merged, map(&[("a", "R"), ("b", "L")]));
    }

    #[test]
    fn first_sync_without_base_fills_gaps_from_each_side() {
        let local = map(&[("a", "L"), ("c", "same")]);
        let remote = map(&[("b", "R"), ("c", "same")]);
        let out = run(None, &local, &remote, &PolicySet::default());
        assert_eq!(out.merged, map(&[("a", "L"), ("b", "R"), ("c", "same")]));
        assert_eq!(
            out.local_changes,
            BTreeMap::from([("b".into(), json!("R"))])
        );
        assert_eq!(
            out.remote_changes,
            BTreeMap::from([("a".into(), json!("L"))])
        );
        assert!(out.conflicts.is_empty());
    }

    fn small_value() -> impl Strategy<Value = Option<String>> {
        prop::option::of(prop::sample::select(vec![
            "x".to_owned(),
            "y".to_owned(),
            "z".to_owned(),
        ]))
    }

    fn small_map() -> impl Strategy<Value = FieldMap> {
        prop::collection::vec(small_value(), 4).prop_map(|vals| {
            vals.into_iter()
                .enumerate()
                .map(|(i, v)| (format!("f{i}"), v.map_or(Value::Null, Value::from)))
                .collect()
        })
    }

    proptest! {
        /// A field changed on one side only always ends up with that side's value, on both sides.
        #[test]
        fn merge_never_drops_a_one_sided_change(base in small_map(), local in small_map(), remote in small_map(), policy in 0..3u8) {
            let set = PolicySet {
                default: [ConflictPolicy::RemoteWins, ConflictPolicy::LocalWins, ConflictPolicy::LatestWins][policy as usize],
                fields: BTreeMap::new(),
            };
            let out = run(Some(&base), &local, &remote, &set);
            for i in 0..4 {
                let f = format!("f{i}");
                let (b, l, r) = (base.get(&f), local.get(&f), remote.get(&f));
                if l != b && r == b { prop_assert_eq!(out.merged.get(&f), l); }
                if r != b && l == b { prop_assert_eq!(out.merged.get(&f), r); }
                // Applying the changes brings both sides to the merged state.
                let mut new_local = local.clone();
                new_local.apply(&out.local_changes);
                let mut new_remote = remote.clone();
                new_remote.apply(&out.remote_changes);
                prop_assert_eq!(new_local.get(&f), out.merged.get(&f));
                prop_assert_eq!(new_remote.get(&f), out.merged.get(&f));
            }
        }

        /// Merging a state with itself is always a no-op (echoes cost nothing).
        #[test]
        fn merging_equal_states_is_a_noop(base in small_map()) {
            let out = run(Some(&base), &base, &base, &PolicySet::default());
            prop_assert!(out.is_noop());
            prop_assert!(out.conflicts.is_empty());
        }
    }
}
