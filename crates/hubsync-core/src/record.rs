//! The flat unified record that both sides are compared in.
//!
//! A [`FieldMap`] maps unified field names (`first_name`, `email_addresses`, …) to JSON values.
//! Custom HubSpot properties outside the model are flattened to `custom_fields.<name>` keys so
//! that the merge treats each one as a field of its own. `null` and an absent key mean the same
//! thing (no value), and the map never stores `null`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A set of field changes; unlike a [`FieldMap`], a `null` value here means "clear the field".
pub type Changes = BTreeMap<String, Value>;

/// The prefix under which custom properties are flattened.
pub const CUSTOM_PREFIX: &str = "custom_fields.";

/// A flat map of unified field names to values; `null` values are never stored.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct FieldMap(BTreeMap<String, Value>);

impl FieldMap {
    /// An empty map.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets a field; a `null` value removes it.
    pub fn set(&mut self, field: impl Into<String>, value: Value) {
        let field = field.into();
        if value.is_null() {
            self.0.remove(&field);
        } else {
            self.0.insert(field, value);
        }
    }

    /// The value of a field, `Value::Null` when absent.
    pub fn get(&self, field: &str) -> &Value {
        self.0.get(field).unwrap_or(&Value::Null)
    }

    /// Whether a field has a value.
    pub fn contains(&self, field: &str) -> bool {
        self.0.contains_key(field)
    }

    /// Iterates over the fields that have a value, in name order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// The names of the fields that have a value.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.0.keys().map(String::as_str)
    }

    /// The number of fields with a value.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether no field has a value.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Builds a flat map from a unified JSON object, flattening `custom_fields`.
    ///
    /// Non-object input yields an empty map.
    pub fn from_unified(value: &Value) -> Self {
        let mut map = FieldMap::new();
        let Some(object) = value.as_object() else {
            return map;
        };
        for (key, v) in object {
            if key == "custom_fields" {
                if let Some(custom) = v.as_object() {
                    for (name, cv) in custom {
                        map.set(format!("{CUSTOM_PREFIX}{name}"), cv.clone());
                    }
                }
            } else {
                map.set(key.clone(), v.clone());
            }
        }
        map
    }

    /// The unified JSON object for this map, with `custom_fields` nested again.
    pub fn to_unified(&self) -> Value {
        let mut out = serde_json::Map::new();
        let mut custom = serde_json::Map::new();
        for (key, v) in &self.0 {
            match key.strip_prefix(CUSTOM_PREFIX) {
                Some(name) => {
                    custom.insert(name.to_owned(), v.clone());
                }
                None => {
                    out.insert(key.clone(), v.clone());
                }
            }
        }
        if !custom.is_empty() {
            out.insert("custom_fields".into(), Value::Object(custom));
        }
        Value::Object(out)
    }

    /// Applies `changes` on top of this map (a `null` in `changes` clears the field).
    pub fn apply(&mut self, changes: &Changes) {
        for (k, v) in changes {
            self.set(k.clone(), v.clone());
        }
    }

    /// The fields whose value differs between `self` and `other`, with `other`'s value
    /// (`null` where `other` has none).
    pub fn diff(&self, other: &FieldMap) -> Changes {
        let mut out = BTreeMap::new();
        for (k, v) in other.iter() {
            if self.get(k) != v {
                out.insert(k.to_owned(), v.clone());
            }
        }
        for k in self.keys() {
            if !other.contains(k) {
                out.insert(k.to_owned(), Value::Null);
            }
        }
        out
    }
}

impl FromIterator<(String, Value)> for FieldMap {
    /// Collects the pairs, dropping `null`s; the last value of a repeated field wins. Sorted
    /// input (as a merge produces) is built in one pass.
    fn from_iter<I: IntoIterator<Item = (String, Value)>>(iter: I) -> Self {
        FieldMap(iter.into_iter().filter(|(_, v)| !v.is_null()).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn custom_fields_flatten_and_nest_back() {
        let unified = json!({"first_name": "Ada", "custom_fields": {"arr__c": "5"}, "title": null});
        let map = FieldMap::from_unified(&unified);
        assert_eq!(map.get("custom_fields.arr__c"), &json!("5"));
        assert!(!map.contains("title"));
        assert_eq!(
            map.to_unified(),
            json!({"first_name": "Ada", "custom_fields": {"arr__c": "5"}})
        );
    }

    #[test]
    fn diff_reports_changed_added_and_cleared_fields() {
        let a: FieldMap = [("x".into(), json!(1)), ("y".into(), json!(2))]
            .into_iter()
            .collect();
        let b: FieldMap = [("x".into(), json!(1)), ("z".into(), json!(3))]
            .into_iter()
            .collect();
        let d = a.diff(&b);
        assert_eq!(d.len(), 2);
        assert_eq!(d["y"], Value::Null);
        assert_eq!(d["z"], json!(3));
    }
}
