//! Filter translation: a unified query (`first_name=John`, `email=…`, `updated_after=…`,
//! `custom_fields.arr__c[gte]=50000`, several combined with AND) parsed into typed [`Filter`]s,
//! then rendered as HubSpot search `filterGroups` or as neutral SQL conditions for the local
//! mirror. The rules are data, declared next to the field mappings in `<type>.fields.toml`.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::spec::{FieldSpec, FieldType, ObjectSpec, SearchTransform};
use crate::value;

/// HubSpot's documented limit of filters per group (of 5 groups, 18 filters in all). A unified
/// query is one AND, so it becomes one group and this is the limit that binds.
pub const MAX_FILTERS_PER_GROUP: usize = 6;

/// A filter operator, as written in a query (`field[op]=value`; no `[op]` means `eq`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Op {
    /// Equal.
    Eq,
    /// Not equal.
    Neq,
    /// Less than.
    Lt,
    /// Less than or equal.
    Lte,
    /// Greater than.
    Gt,
    /// Greater than or equal.
    Gte,
    /// Between two values, both included (`a,b`).
    Between,
    /// One of a comma-separated list.
    In,
    /// A list field holds the value.
    Contains,
    /// Has no value (`true` or empty).
    IsNull,
    /// Has a value (`true` or empty).
    NotNull,
}

impl Op {
    /// Every operator, in query spelling order.
    pub const ALL: [Op; 11] = [
        Op::Eq,
        Op::Neq,
        Op::Lt,
        Op::Lte,
        Op::Gt,
        Op::Gte,
        Op::Between,
        Op::In,
        Op::Contains,
        Op::IsNull,
        Op::NotNull,
    ];

    /// The query spelling (`gte`).
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Eq => "eq",
            Op::Neq => "neq",
            Op::Lt => "lt",
            Op::Lte => "lte",
            Op::Gt => "gt",
            Op::Gte => "gte",
            Op::Between => "between",
            Op::In => "in",
            Op::Contains => "contains",
            Op::IsNull => "is_null",
            Op::NotNull => "not_null",
        }
    }

    fn parse(s: &str) -> Option<Op> {
        Op::ALL.into_iter().find(|op| op.as_str() == s)
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A filter's operand, parsed and canonicalised by the field's type.
#[derive(Debug, Clone, PartialEq)]
pub enum Operand {
    /// No operand (`is_null`, `not_null`).
    None,
    /// One value.
    One(Value),
    /// A list (`in`).
    Many(Vec<Value>),
    /// Both bounds of `between`.
    Range(Value, Value),
}

/// One typed filter.
#[derive(Debug, Clone, PartialEq)]
pub struct Filter {
    /// The query parameter as written (`custom_fields.arr__c[gte]`), for error messages.
    pub name: String,
    /// The unified field (`email_addresses`, `custom_fields.arr__c`).
    pub field: String,
    /// The operator.
    pub op: Op,
    /// The operand.
    pub operand: Operand,
}

/// Why a query cannot be translated. Every variant names the offending filter as written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FilterError {
    /// No field or alias has this name.
    #[error("unknown filter field `{name}`")]
    UnknownField {
        /// The query parameter.
        name: String,
    },
    /// The field does not allow the operator.
    #[error("filter `{name}` does not allow operator `{op}`")]
    UnsupportedOperator {
        /// The query parameter.
        name: String,
        /// The operator as written.
        op: String,
    },
    /// The value does not fit the field.
    #[error("filter `{name}` has an invalid value: {reason}")]
    InvalidValue {
        /// The query parameter.
        name: String,
        /// Why.
        reason: String,
    },
    /// HubSpot search cannot express the filter.
    #[error("filter `{name}` cannot be expressed in a HubSpot search: {reason}")]
    NotSearchable {
        /// The query parameter.
        name: String,
        /// Why.
        reason: String,
    },
    /// The query needs more filters than HubSpot search accepts.
    #[error("filter `{name}` goes beyond HubSpot's limit of {limit} search filters")]
    TooManyFilters {
        /// The first filter beyond the limit.
        name: String,
        /// The limit.
        limit: usize,
    },
}

/// One HubSpot search filter (`{propertyName, operator, value?, values?, highValue?}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SearchFilter {
    /// The property.
    pub property_name: String,
    /// HubSpot's operator (`EQ`, `BETWEEN`, `NOT_HAS_PROPERTY`, …).
    pub operator: String,
    /// The value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// The upper bound of `BETWEEN`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub high_value: Option<String>,
    /// The values of `IN`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub values: Option<Vec<String>>,
}

/// One HubSpot filter group; its filters are ANDed, groups are ORed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FilterGroup {
    /// The filters.
    pub filters: Vec<SearchFilter>,
}

/// A comparison on the local mirror; the same shape as the store's `Filter` (`field` is a
/// column or `custom_fields.<name>`, the value is bound as a parameter).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SqlFilter {
    /// The column, or `custom_fields.<name>`.
    pub field: String,
    /// The comparison.
    pub op: SqlOp,
    /// The operand (an array for `in`, null for the null checks).
    pub value: Value,
}

/// A comparison the store can run; the same variants and serde names as the store's
/// `FilterOp`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SqlOp {
    /// Equal.
    Eq,
    /// Not equal.
    Neq,
    /// Less than.
    Lt,
    /// Less than or equal.
    Lte,
    /// Greater than.
    Gt,
    /// Greater than or equal.
    Gte,
    /// One of a list.
    In,
    /// A list column holds the value.
    Contains,
    /// Has no value.
    IsNull,
    /// Has a value.
    NotNull,
}

/// The filter rules of one object type.
#[derive(Debug, Clone)]
pub struct FilterRules {
    spec: ObjectSpec,
}

/// One day in milliseconds, less one: the last millisecond of a day counted from its first.
const DAY_LAST_MS: i64 = 86_400_000 - 1;

impl FilterRules {
    pub(crate) fn new(spec: ObjectSpec) -> FilterRules {
        FilterRules { spec }
    }

    /// Parses query parameters into filters (ANDed). The caller removes its own parameters
    /// (`limit`, `after`, …) first; any other unknown name is an error.
    pub fn parse<K, V, I>(&self, params: I) -> Result<Vec<Filter>, FilterError>
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<str>,
        V: AsRef<str>,
    {
        params
            .into_iter()
            .map(|(k, v)| self.parse_one(k.as_ref(), v.as_ref()))
            .collect()
    }

    /// Parses one query parameter, `field=value` or `field[op]=value`.
    pub fn parse_one(&self, key: &str, raw: &str) -> Result<Filter, FilterError> {
        let name = key.to_owned();
        let (base, op_text) = match key.strip_suffix(']').and_then(|k| k.split_once('[')) {
            Some((base, op)) => (base, Some(op)),
            None => (key, None),
        };
        let op = match op_text {
            None => None,
            Some(text) => {
                Some(
                    Op::parse(text).ok_or_else(|| FilterError::UnsupportedOperator {
                        name: name.clone(),
                        op: text.to_owned(),
                    })?,
                )
            }
        };
        let unsupported = |op: Op| FilterError::UnsupportedOperator {
            name: name.clone(),
            op: op.as_str().to_owned(),
        };

        if let Some(custom) = base.strip_prefix(hubsync_core::record::CUSTOM_PREFIX) {
            if !value::valid_property_name(custom)
                || self.spec.is_reserved(custom)
                || self.spec.is_mapped_property(custom)
            {
                return Err(FilterError::UnknownField { name });
            }
            let op = op.unwrap_or(Op::Eq);
            if !self.spec.custom.ops.contains(&op) {
                return Err(unsupported(op));
            }
            let operand = parse_operand(&name, None, op, raw)?;
            return Ok(Filter {
                name,
                field: base.to_owned(),
                op,
                operand,
            });
        }

        let (field, op) = match (self.spec.fields.get(base), self.spec.aliases.get(base)) {
            (Some(_), _) => (base.to_owned(), op.unwrap_or(Op::Eq)),
            (None, Some(alias)) => match op {
                Some(other) if other != alias.op => return Err(unsupported(other)),
                _ => (alias.field.clone(), alias.op),
            },
            (None, None) => return Err(FilterError::UnknownField { name }),
        };
        let spec = self
            .field(&field)
            .ok_or_else(|| FilterError::UnknownField { name: name.clone() })?;
        if !spec.ops.contains(&op) {
            return Err(unsupported(op));
        }
        let operand = parse_operand(&name, Some(spec), op, raw)?;
        Ok(Filter {
            name,
            field,
            op,
            operand,
        })
    }

    fn field(&self, name: &str) -> Option<&FieldSpec> {
        self.spec.fields.get(name)
    }

    /// Renders filters (ANDed) as HubSpot search `filterGroups`; an empty list for no filters.
    /// Refuses, naming the filter, what HubSpot cannot express or what exceeds its limits.
    pub fn to_filter_groups(&self, filters: &[Filter]) -> Result<Vec<FilterGroup>, FilterError> {
        let mut group = Vec::with_capacity(filters.len());
        for filter in filters {
            group.push(self.search_filter(filter)?);
            if group.len() > MAX_FILTERS_PER_GROUP {
                return Err(FilterError::TooManyFilters {
                    name: filter.name.clone(),
                    limit: MAX_FILTERS_PER_GROUP,
                });
            }
        }
        Ok(if group.is_empty() {
            Vec::new()
        } else {
            vec![FilterGroup { filters: group }]
        })
    }

    fn search_filter(&self, filter: &Filter) -> Result<SearchFilter, FilterError> {
        let refuse = |reason: &str| FilterError::NotSearchable {
            name: filter.name.clone(),
            reason: reason.to_owned(),
        };
        let (property, spec, ops, lowercase_in, transform) = match filter
            .field
            .strip_prefix(hubsync_core::record::CUSTOM_PREFIX)
        {
            Some(custom) => (
                custom.to_owned(),
                None,
                self.spec
                    .custom
                    .search_ops
                    .as_ref()
                    .unwrap_or(&self.spec.custom.ops),
                self.spec.custom.lowercase_in,
                SearchTransform::None,
            ),
            None => {
                let spec = self
                    .field(&filter.field)
                    .ok_or_else(|| FilterError::UnknownField {
                        name: filter.name.clone(),
                    })?;
                let rule = spec
                    .search
                    .as_ref()
                    .ok_or_else(|| refuse("the field is not searchable in HubSpot"))?;
                (
                    rule.property.clone(),
                    Some(spec),
                    rule.ops.as_ref().unwrap_or(&spec.ops),
                    rule.lowercase_in,
                    rule.transform,
                )
            }
        };
        if !ops.contains(&filter.op) {
            return Err(refuse(&format!(
                "HubSpot search cannot apply `{}` to this field",
                filter.op
            )));
        }
        let day = spec.is_some_and(|s| s.ty == FieldType::Date);
        let render = |v: &Value, end_of_day: bool| -> Result<String, FilterError> {
            match transform {
                SearchTransform::EpochMs => {
                    let t = value::instant_of(&filter.name, v)
                        .ok()
                        .flatten()
                        .ok_or_else(|| refuse("the value is not a date"))?;
                    let ms = value::epoch_ms(t);
                    Ok((if day && end_of_day {
                        ms + DAY_LAST_MS
                    } else {
                        ms
                    })
                    .to_string())
                }
                SearchTransform::None => Ok(text(v)),
            }
        };
        let new = |operator: &str| SearchFilter {
            property_name: property.clone(),
            operator: operator.to_owned(),
            value: None,
            high_value: None,
            values: None,
        };
        let one =
            |operator: &str, v: &Value, end_of_day: bool| -> Result<SearchFilter, FilterError> {
                Ok(SearchFilter {
                    value: Some(render(v, end_of_day)?),
                    ..new(operator)
                })
            };
        let between = |lo: &Value, hi: &Value| -> Result<SearchFilter, FilterError> {
            Ok(SearchFilter {
                value: Some(render(lo, false)?),
                high_value: Some(render(hi, true)?),
                ..new("BETWEEN")
            })
        };
        match (&filter.op, &filter.operand) {
            (Op::IsNull, _) => Ok(new("NOT_HAS_PROPERTY")),
            (Op::NotNull, _) => Ok(new("HAS_PROPERTY")),
            // A day is a range of instants in HubSpot.
            (Op::Eq, Operand::One(v)) if day => between(v, v),
            (Op::Neq, Operand::One(_)) if day => {
                Err(refuse("HubSpot has no operator for \"not on this day\""))
            }
            (Op::Eq | Op::Contains, Operand::One(v)) => one("EQ", v, false),
            (Op::Neq, Operand::One(v)) => one("NEQ", v, false),
            (Op::Lt, Operand::One(v)) => one("LT", v, false),
            (Op::Lte, Operand::One(v)) => one("LTE", v, true),
            (Op::Gt, Operand::One(v)) => one("GT", v, true),
            (Op::Gte, Operand::One(v)) => one("GTE", v, false),
            (Op::Between, Operand::Range(lo, hi)) => between(lo, hi),
            (Op::In, Operand::Many(values)) => {
                let values = values
                    .iter()
                    .map(|v| {
                        render(v, false).map(|s| if lowercase_in { s.to_lowercase() } else { s })
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(SearchFilter {
                    values: Some(values),
                    ..new("IN")
                })
            }
            _ => Err(refuse("the operand does not fit the operator")),
        }
    }

    /// Renders filters (ANDed) as conditions on the local mirror.
    pub fn to_sql_filters(&self, filters: &[Filter]) -> Vec<SqlFilter> {
        let mut out = Vec::with_capacity(filters.len());
        for filter in filters {
            let spec = self.field(&filter.field);
            let column = spec
                .and_then(|s| s.column.clone())
                .unwrap_or_else(|| filter.field.clone());
            // hubsync's own timestamps are epoch milliseconds in the store.
            let stored = |v: &Value| match spec.map(|s| s.ty) {
                Some(FieldType::Datetime) => value::instant_of(&filter.name, v)
                    .ok()
                    .flatten()
                    .map_or(Value::Null, |t| Value::from(value::epoch_ms(t))),
                _ => v.clone(),
            };
            let mut push = |op: SqlOp, value: Value| {
                out.push(SqlFilter {
                    field: column.clone(),
                    op,
                    value,
                })
            };
            match (&filter.op, &filter.operand) {
                (Op::IsNull, _) => push(SqlOp::IsNull, Value::Null),
                (Op::NotNull, _) => push(SqlOp::NotNull, Value::Null),
                (Op::Between, Operand::Range(lo, hi)) => {
                    push(SqlOp::Gte, stored(lo));
                    push(SqlOp::Lte, stored(hi));
                }
                (Op::In, Operand::Many(values)) => {
                    push(SqlOp::In, Value::Array(values.iter().map(stored).collect()))
                }
                (op, Operand::One(v)) => {
                    let op = match op {
                        Op::Eq => SqlOp::Eq,
                        Op::Neq => SqlOp::Neq,
                        Op::Lt => SqlOp::Lt,
                        Op::Lte => SqlOp::Lte,
                        Op::Gt => SqlOp::Gt,
                        Op::Gte => SqlOp::Gte,
                        _ => SqlOp::Contains,
                    };
                    push(op, stored(v));
                }
                // `parse_one` pairs every operator with its operand shape.
                _ => {}
            }
        }
        out
    }
}

/// The text HubSpot gets for a canonical filter value.
fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => value::number_text(n),
        other => other.to_string(),
    }
}

fn parse_operand(
    name: &str,
    spec: Option<&FieldSpec>,
    op: Op,
    raw: &str,
) -> Result<Operand, FilterError> {
    let invalid = |reason: String| FilterError::InvalidValue {
        name: name.to_owned(),
        reason,
    };
    let scalar = |text: &str| -> Result<Value, FilterError> {
        let text = text.trim();
        if text.is_empty() {
            return Err(invalid(
                "the value is empty (use `[is_null]` to find records without one)".into(),
            ));
        }
        let raw = Value::String(text.to_owned());
        let parsed = match spec {
            // Custom properties hold strings; a number compares as a number in ranges.
            None => match op {
                Op::Lt | Op::Lte | Op::Gt | Op::Gte | Op::Between => text
                    .parse::<f64>()
                    .ok()
                    .filter(|n| n.is_finite())
                    .map_or(raw, value::canonical_number),
                _ => raw,
            },
            Some(spec) => {
                let ty_spec;
                // A list field is filtered by one of its items.
                let item = match spec.ty {
                    FieldType::StringList | FieldType::EmailList => {
                        ty_spec = FieldSpec {
                            ty: FieldType::String,
                            ..spec.clone()
                        };
                        &ty_spec
                    }
                    _ => spec,
                };
                value::canonical(name, item, &raw)
                    .map_err(|e| match e {
                        crate::MappingError::InvalidValue { reason, .. } => invalid(reason),
                        other => invalid(other.to_string()),
                    })?
                    .ok_or_else(|| invalid("the value is empty".into()))?
            }
        };
        Ok(parsed)
    };
    match op {
        Op::IsNull | Op::NotNull => match raw.trim() {
            "" | "true" => Ok(Operand::None),
            _ => Err(invalid("expected `true` or nothing".into())),
        },
        Op::In => Ok(Operand::Many(
            raw.split(',').map(scalar).collect::<Result<_, _>>()?,
        )),
        Op::Between => match raw.split_once(',') {
            Some((lo, hi)) => Ok(Operand::Range(scalar(lo)?, scalar(hi)?)),
            None => Err(invalid("expected two values, `low,high`".into())),
        },
        _ => Ok(Operand::One(scalar(raw)?)),
    }
}
