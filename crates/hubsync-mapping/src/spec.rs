//! The field declarations of one object type (`<type>.fields.toml`): each unified field's type,
//! the HubSpot properties it is made from, and how a filter on it translates to the local
//! mirror and to HubSpot search. Parsed once at load and checked for consistency.

use std::collections::{BTreeMap, BTreeSet};

use serde::Deserialize;

use crate::error::MappingError;
use crate::filter::Op;

/// The type of a unified field; it decides validation, the canonical form and filter parsing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FieldType {
    /// A string; numbers are accepted and stored as their decimal text.
    String,
    /// A whole number (`i64`).
    Integer,
    /// A number; integral values are stored as `i64`, others as `f64`.
    Number,
    /// A calendar date, `YYYY-MM-DD` (UTC).
    Date,
    /// An instant, RFC 3339 in UTC with milliseconds.
    Datetime,
    /// An array of non-empty strings.
    StringList,
    /// An array of distinct e-mail addresses.
    EmailList,
    /// An object whose declared keys hold strings.
    Object,
}

impl FieldType {
    /// The operators that make sense for a field of this type.
    pub(crate) fn allows(self, op: Op) -> bool {
        use Op::*;
        match self {
            FieldType::String => matches!(op, Eq | Neq | In | IsNull | NotNull),
            FieldType::Integer | FieldType::Number => {
                matches!(
                    op,
                    Eq | Neq | Lt | Lte | Gt | Gte | Between | In | IsNull | NotNull
                )
            }
            FieldType::Date | FieldType::Datetime => {
                matches!(
                    op,
                    Eq | Neq | Lt | Lte | Gt | Gte | Between | IsNull | NotNull
                )
            }
            FieldType::StringList | FieldType::EmailList => {
                matches!(op, Contains | IsNull | NotNull)
            }
            FieldType::Object => matches!(op, IsNull | NotNull),
        }
    }
}

/// How a filter value is rendered for HubSpot search.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SearchTransform {
    /// The value as text.
    #[default]
    None,
    /// Dates and instants as epoch milliseconds (what HubSpot search requires for them).
    EpochMs,
}

/// How filters on a field translate to HubSpot search.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SearchRule {
    /// The HubSpot property searched.
    pub property: String,
    /// The operators HubSpot can express for this field (default: all of the field's `ops`).
    #[serde(default)]
    pub ops: Option<Vec<Op>>,
    /// The value transform.
    #[serde(default)]
    pub transform: SearchTransform,
    /// Lower-case `in` values (HubSpot requires it for string properties; enumerations are
    /// case-sensitive and must keep their case).
    #[serde(default)]
    pub lowercase_in: bool,
}

/// One unified field.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldSpec {
    /// The field's type.
    #[serde(rename = "type")]
    pub ty: FieldType,
    /// The HubSpot properties the field is made from (read and written by the mapping).
    #[serde(default)]
    pub properties: Vec<String>,
    /// Whether the mapping produces the field (`false` for filter-only fields such as
    /// `updated_at`, which hubsync maintains).
    #[serde(default = "yes")]
    pub mapped: bool,
    /// The most items a list may hold.
    #[serde(default)]
    pub max_items: Option<usize>,
    /// The keys of an object field.
    #[serde(default)]
    pub keys: Vec<String>,
    /// The app-table column (default: the field name).
    #[serde(default)]
    pub column: Option<String>,
    /// The filter operators allowed on the field (default: none, the field is not filterable).
    #[serde(default)]
    pub ops: Vec<Op>,
    /// The HubSpot search translation (absent: filters on the field work locally only).
    #[serde(default)]
    pub search: Option<SearchRule>,
}

fn yes() -> bool {
    true
}

/// A query name that stands for a field with a fixed operator (`email` → `email_addresses`
/// `contains`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Alias {
    /// The field the alias filters.
    pub field: String,
    /// The operator it applies.
    pub op: Op,
}

/// Rules for custom properties (`custom_fields.<name>`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CustomSpec {
    /// The filter operators allowed on custom fields.
    #[serde(default)]
    pub ops: Vec<Op>,
    /// The operators HubSpot search can express on them (default: all of `ops`).
    #[serde(default)]
    pub search_ops: Option<Vec<Op>>,
    /// Lower-case `in` values for HubSpot.
    #[serde(default)]
    pub lowercase_in: bool,
    /// HubSpot properties that are never custom fields (server-computed and system ones).
    #[serde(default)]
    pub reserved: BTreeSet<String>,
    /// Prefixes of reserved properties (`hs_all_`, `hs_calculated_`, …).
    #[serde(default)]
    pub reserved_prefixes: Vec<String>,
}

/// Everything `<type>.fields.toml` declares.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ObjectSpec {
    /// The unified fields by name.
    pub fields: BTreeMap<String, FieldSpec>,
    /// Query aliases by name.
    #[serde(default)]
    pub aliases: BTreeMap<String, Alias>,
    /// Custom-property rules.
    pub custom: CustomSpec,
    /// The HubSpot properties of every mapped field (derived at load).
    #[serde(skip)]
    pub mapped: BTreeSet<String>,
}

impl ObjectSpec {
    /// Parses and checks a fields file; errors name the file and line.
    pub(crate) fn parse(file: &str, text: &str) -> Result<ObjectSpec, MappingError> {
        let mut spec: ObjectSpec = toml::from_str(text).map_err(|e| MappingError::Spec {
            file: file.to_owned(),
            line: e.span().map(|s| line_of(text, s.start)),
            message: e.message().to_owned(),
        })?;
        spec.check().map_err(|message| MappingError::Spec {
            file: file.to_owned(),
            line: None,
            message,
        })?;
        spec.mapped = spec
            .fields
            .values()
            .filter(|f| f.mapped)
            .flat_map(|f| f.properties.iter().cloned())
            .collect();
        Ok(spec)
    }

    fn check(&self) -> Result<(), String> {
        let mut owner: BTreeMap<&str, &str> = BTreeMap::new();
        for (name, f) in &self.fields {
            if name.starts_with(hubsync_core::record::CUSTOM_PREFIX) || name == "custom_fields" {
                return Err(format!(
                    "field `{name}`: custom fields are declared under [custom]"
                ));
            }
            if f.mapped && f.properties.is_empty() {
                return Err(format!("field `{name}`: a mapped field needs `properties`"));
            }
            for p in &f.properties {
                if let Some(other) = owner.insert(p, name) {
                    return Err(format!(
                        "property `{p}` is claimed by both `{other}` and `{name}`"
                    ));
                }
                if self.is_reserved(p) {
                    return Err(format!("field `{name}`: property `{p}` is reserved"));
                }
            }
            let is_object = f.ty == FieldType::Object;
            if is_object == f.keys.is_empty() {
                return Err(format!(
                    "field `{name}`: `keys` is required for, and only for, objects"
                ));
            }
            if f.max_items.is_some()
                && !matches!(f.ty, FieldType::StringList | FieldType::EmailList)
            {
                return Err(format!("field `{name}`: `max_items` applies to lists only"));
            }
            for op in &f.ops {
                if !f.ty.allows(*op) {
                    return Err(format!(
                        "field `{name}`: operator `{op}` does not apply to its type"
                    ));
                }
            }
            if let Some(search) = &f.search {
                let dated = matches!(f.ty, FieldType::Date | FieldType::Datetime);
                if dated != (search.transform == SearchTransform::EpochMs) {
                    return Err(format!(
                        "field `{name}`: HubSpot searches dates as epoch milliseconds; use \
                         `transform = \"epoch_ms\"` for date fields and only for them"
                    ));
                }
                for op in search.ops.iter().flatten() {
                    if !f.ops.contains(op) {
                        return Err(format!(
                            "field `{name}`: search operator `{op}` is not in the field's `ops`"
                        ));
                    }
                }
            }
        }
        for (name, alias) in &self.aliases {
            if self.fields.contains_key(name) {
                return Err(format!("alias `{name}` shadows a field"));
            }
            let Some(field) = self.fields.get(&alias.field) else {
                return Err(format!("alias `{name}`: unknown field `{}`", alias.field));
            };
            if !field.ops.contains(&alias.op) {
                return Err(format!(
                    "alias `{name}`: field `{}` does not allow `{}`",
                    alias.field, alias.op
                ));
            }
        }
        for op in &self.custom.ops {
            if matches!(op, Op::Contains) {
                return Err("custom fields hold strings: `contains` does not apply".into());
            }
        }
        for op in self.custom.search_ops.iter().flatten() {
            if !self.custom.ops.contains(op) {
                return Err(format!(
                    "custom search operator `{op}` is not in `custom.ops`"
                ));
            }
        }
        Ok(())
    }

    /// Whether a HubSpot property is reserved (never a custom field).
    pub(crate) fn is_reserved(&self, property: &str) -> bool {
        self.custom.reserved.contains(property)
            || self
                .custom
                .reserved_prefixes
                .iter()
                .any(|p| property.starts_with(p.as_str()))
    }

    /// Whether a HubSpot property is made into a mapped field.
    pub(crate) fn is_mapped_property(&self, property: &str) -> bool {
        self.mapped.contains(property)
    }
}

/// The 1-based line of a byte offset.
pub(crate) fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()
        .iter()
        .take(offset)
        .filter(|b| **b == b'\n')
        .count()
        + 1
}
