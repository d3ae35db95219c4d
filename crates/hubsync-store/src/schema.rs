//! The app tables' columns, and the translation between a row and a [`FieldMap`]: the one
//! place that knows which unified field is which column. Also builds the `WHERE` clause of a
//! record listing from [`Filter`]s, with field names checked against the columns and every
//! value bound as a parameter.

use hubsync_core::record::CUSTOM_PREFIX;
use hubsync_core::{FieldMap, HubspotId, LocalId, ObjectType};
use serde_json::Value;

use crate::db::{Arg, Cell, Dialect, Row};
use crate::error::StoreError;
use crate::model::{Filter, FilterOp, LocalRecord};

/// How a column stores its field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Text.
    Text,
    /// A 64-bit integer (local ids, counts).
    Int,
    /// A number (REAL on SQLite, NUMERIC on PostgreSQL).
    Real,
    /// A JSON array.
    List,
    /// A JSON object.
    Object,
}

/// One synced column of an app table.
#[derive(Debug, Clone, Copy)]
pub struct Column {
    /// The column name, which is also the unified field name.
    pub name: &'static str,
    /// How it is stored.
    pub kind: Kind,
}

const fn col(name: &'static str, kind: Kind) -> Column {
    Column { name, kind }
}

const CONTACTS: &[Column] = &[
    col("first_name", Kind::Text),
    col("last_name", Kind::Text),
    col("email_addresses", Kind::List),
    col("phone_numbers", Kind::List),
    col("title", Kind::Text),
    col("company_id", Kind::Int),
    col("owner_id", Kind::Text),
    col("lifecycle_stage", Kind::Text),
];

const COMPANIES: &[Column] = &[
    col("name", Kind::Text),
    col("domain", Kind::Text),
    col("industry", Kind::Text),
    col("phone", Kind::Text),
    col("address", Kind::Object),
    col("employee_count", Kind::Int),
    col("annual_revenue", Kind::Real),
];

const DEALS: &[Column] = &[
    col("name", Kind::Text),
    col("amount", Kind::Real),
    col("stage", Kind::Text),
    col("pipeline", Kind::Text),
    col("close_date", Kind::Text),
    col("company_id", Kind::Int),
    col("contact_ids", Kind::List),
];

/// Bookkeeping columns every app table has; filterable, but not unified fields.
const META: &[Column] = &[
    col("id", Kind::Int),
    col("hubspot_id", Kind::Text),
    col("created_at", Kind::Int),
    col("updated_at", Kind::Int),
    col("deleted_at", Kind::Int),
];

/// The synced columns of an object type's table (every unified field except `custom_fields.*`).
pub fn columns(object_type: ObjectType) -> &'static [Column] {
    match object_type {
        ObjectType::Contacts => CONTACTS,
        ObjectType::Companies => COMPANIES,
        ObjectType::Deals => DEALS,
    }
}

/// The table of an object type. Table names come from this closed set only.
pub fn table(object_type: ObjectType) -> &'static str {
    object_type.plural()
}

/// The `SELECT` list of a record: bookkeeping columns, synced columns, `custom_fields`.
pub fn select_list(dialect: Dialect, object_type: ObjectType) -> String {
    let mut out = String::from("id, hubspot_id, created_at, updated_at, deleted_at, custom_fields");
    for c in columns(object_type) {
        out.push_str(", ");
        match (dialect, c.kind) {
            // sqlx reads NUMERIC only with extra features; a double is what the merge compares.
            (Dialect::Postgres, Kind::Real) => {
                out.push_str(c.name);
                out.push_str("::float8 AS ");
                out.push_str(c.name);
            }
            _ => out.push_str(c.name),
        }
    }
    out
}

/// A JSON number for a float: integral values become integers, so that `5.0` read from a REAL
/// column equals the `5` a mapping produces.
pub fn number(v: f64) -> Value {
    if v.fract() == 0.0 && v.abs() < 9.0e15 {
        Value::from(v as i64)
    } else {
        serde_json::Number::from_f64(v)
            .map(Value::Number)
            .unwrap_or(Value::Null)
    }
}

fn cell_to_value(table: &'static str, column: &Column, cell: Cell) -> Result<Value, StoreError> {
    let value = match (column.kind, cell) {
        (_, Cell::Null) => Value::Null,
        (Kind::Text, Cell::Text(s)) => Value::String(s),
        (Kind::Text, Cell::Int(v)) => Value::String(v.to_string()),
        (Kind::Int, Cell::Int(v)) => Value::from(v),
        (Kind::Real, Cell::Int(v)) => Value::from(v),
        (Kind::Real | Kind::Int, Cell::Real(v)) => number(v),
        (Kind::List | Kind::Object, Cell::Json(v)) => v,
        // JSON the app wrote badly stays visible as its text, so that the mapping can reject
        // this one record (to the dead-letter table) instead of the whole batch failing.
        (Kind::List | Kind::Object, Cell::Text(s)) => {
            serde_json::from_str(&s).unwrap_or(Value::String(s))
        }
        (_, other) => {
            return Err(StoreError::corrupt(
                table,
                column.name,
                format!("unexpected stored value {other:?}"),
            ));
        }
    };
    // Empty lists and objects are no value, like NULL.
    Ok(match &value {
        Value::Array(a) if a.is_empty() => Value::Null,
        Value::Object(o) if o.is_empty() => Value::Null,
        _ => value,
    })
}

/// Builds a [`LocalRecord`] from a row selected with [`select_list`].
pub fn record_from_row(object_type: ObjectType, mut row: Row) -> Result<LocalRecord, StoreError> {
    let table = table(object_type);
    let local_id = LocalId(row.i64(table, "id")?);
    let hubspot_id = match row.opt_text(table, "hubspot_id")? {
        Some(s) if !s.is_empty() => Some(
            s.parse::<HubspotId>()
                .map_err(|e| StoreError::corrupt(table, "hubspot_id", e.to_string()))?,
        ),
        _ => None,
    };
    let created_at = row.i64(table, "created_at")?;
    let updated_at = row.i64(table, "updated_at")?;
    let deleted = row.opt_i64(table, "deleted_at")?.is_some();
    let mut fields = FieldMap::new();
    for c in columns(object_type) {
        let value = cell_to_value(table, c, row.take(c.name))?;
        fields.set(c.name, value);
    }
    match row.opt_json(table, "custom_fields")? {
        None | Some(Value::Null) => {}
        Some(Value::Object(custom)) => {
            for (name, v) in custom {
                fields.set(format!("{CUSTOM_PREFIX}{name}"), v);
            }
        }
        Some(_) => {
            return Err(StoreError::corrupt(
                table,
                "custom_fields",
                "expected a json object",
            ));
        }
    }
    Ok(LocalRecord {
        local_id,
        hubspot_id,
        fields,
        created_at,
        updated_at,
        deleted,
    })
}

/// The column of a unified field name, if it is one.
pub fn column(object_type: ObjectType, field: &str) -> Option<&'static Column> {
    columns(object_type).iter().find(|c| c.name == field)
}

fn invalid(object_type: ObjectType, field: &str, reason: impl Into<String>) -> StoreError {
    StoreError::InvalidValue {
        object_type,
        field: field.to_owned(),
        reason: reason.into(),
    }
}

/// The parameter that stores `value` in `column`; `null` clears it (an empty list for list
/// columns, which are never NULL).
pub fn value_to_arg(
    object_type: ObjectType,
    column: &Column,
    value: &Value,
) -> Result<Arg, StoreError> {
    let name = column.name;
    match (column.kind, value) {
        (Kind::Text, Value::Null) => Ok(Arg::Text(None)),
        (Kind::Text, Value::String(s)) => Ok(Arg::Text(Some(s.clone()))),
        (Kind::Text, Value::Number(n)) => Ok(Arg::Text(Some(n.to_string()))),
        (Kind::Text, Value::Bool(b)) => Ok(Arg::Text(Some(b.to_string()))),
        (Kind::Int, Value::Null) => Ok(Arg::Int(None)),
        (Kind::Int, Value::Number(n)) => n
            .as_i64()
            .or_else(|| {
                n.as_f64()
                    .filter(|f| f.fract() == 0.0 && f.abs() < 9.0e15)
                    .map(|f| f as i64)
            })
            .map(|v| Arg::Int(Some(v)))
            .ok_or_else(|| invalid(object_type, name, format!("expected an integer, found {n}"))),
        (Kind::Int, Value::String(s)) => s
            .trim()
            .parse::<i64>()
            .map(|v| Arg::Int(Some(v)))
            .map_err(|_| {
                invalid(
                    object_type,
                    name,
                    format!("expected an integer, found \"{s}\""),
                )
            }),
        (Kind::Real, Value::Null) => Ok(Arg::Real(None)),
        (Kind::Real, Value::Number(n)) => n
            .as_f64()
            .map(|v| Arg::Real(Some(v)))
            .ok_or_else(|| invalid(object_type, name, format!("expected a number, found {n}"))),
        (Kind::Real, Value::String(s)) => s
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|v| v.is_finite())
            .map(|v| Arg::Real(Some(v)))
            .ok_or_else(|| {
                invalid(
                    object_type,
                    name,
                    format!("expected a number, found \"{s}\""),
                )
            }),
        (Kind::List, Value::Null) => Ok(Arg::Json(Some(Value::Array(Vec::new())))),
        (Kind::List, Value::Array(_)) => Ok(Arg::Json(Some(value.clone()))),
        (Kind::Object, Value::Null) => Ok(Arg::Json(None)),
        (Kind::Object, Value::Object(_)) => Ok(Arg::Json(Some(value.clone()))),
        (kind, other) => Err(invalid(
            object_type,
            name,
            format!("a {kind:?} column cannot hold {other}"),
        )),
    }
}

/// Checks that every field of `fields` is a known column or custom field with a value its
/// column can hold, so that a batch can be validated before it is written.
pub fn check_fields<'a>(
    object_type: ObjectType,
    fields: impl IntoIterator<Item = (&'a str, &'a Value)>,
) -> Result<(), StoreError> {
    for (name, value) in fields {
        if name
            .strip_prefix(CUSTOM_PREFIX)
            .is_some_and(|n| !n.is_empty())
        {
            continue;
        }
        let column = column(object_type, name).ok_or_else(|| StoreError::UnknownField {
            object_type,
            field: name.to_owned(),
        })?;
        value_to_arg(object_type, column, value)?;
    }
    Ok(())
}

/// Collects bound parameters and hands out their `$n` placeholders.
#[derive(Debug, Default)]
pub struct Binder {
    /// The parameters, in placeholder order.
    pub args: Vec<Arg>,
}

impl Binder {
    /// Binds a parameter; returns its placeholder.
    pub fn bind(&mut self, arg: Arg) -> String {
        self.args.push(arg);
        format!("${}", self.args.len())
    }
}

/// Where a filter's field lives.
enum Target {
    Column(&'static Column),
    Custom(String),
}

fn filter_error(field: &str, reason: impl Into<String>) -> StoreError {
    StoreError::InvalidFilter {
        field: field.to_owned(),
        reason: reason.into(),
    }
}

/// A JSON scalar as the parameter SQLite's `json_extract`/`json_each` compares with.
fn sqlite_json_scalar(field: &str, value: &Value) -> Result<Arg, StoreError> {
    match value {
        Value::String(s) => Ok(Arg::Text(Some(s.clone()))),
        Value::Bool(b) => Ok(Arg::Int(Some(i64::from(*b)))),
        Value::Number(n) => match n.as_i64() {
            Some(i) => Ok(Arg::Int(Some(i))),
            None => Ok(Arg::Real(n.as_f64())),
        },
        other => Err(filter_error(field, format!("cannot compare with {other}"))),
    }
}

fn sql_op(op: FilterOp) -> &'static str {
    match op {
        FilterOp::Eq => "=",
        FilterOp::Neq => "<>",
        FilterOp::Lt => "<",
        FilterOp::Lte => "<=",
        FilterOp::Gt => ">",
        FilterOp::Gte => ">=",
        FilterOp::In | FilterOp::Contains | FilterOp::IsNull | FilterOp::NotNull => "=",
    }
}

/// A list column as an expression that is always a JSON array: a value the app wrote badly
/// (not JSON, or not a list) reads as an empty list, so one bad row never fails a query.
pub fn json_list(dialect: Dialect, column: &str) -> String {
    match dialect {
        Dialect::Sqlite => format!(
            "CASE WHEN NOT json_valid({column}) THEN '[]' WHEN json_type({column}) = 'array' THEN {column} ELSE '[]' END"
        ),
        Dialect::Postgres => {
            format!("CASE WHEN jsonb_typeof({column}) = 'array' THEN {column} ELSE '[]'::jsonb END")
        }
    }
}

/// Appends ` AND <condition>` for each filter to `sql`.
pub fn push_filters(
    dialect: Dialect,
    object_type: ObjectType,
    filters: &[Filter],
    sql: &mut String,
    binder: &mut Binder,
) -> Result<(), StoreError> {
    for filter in filters {
        let condition = filter_condition(dialect, object_type, filter, binder)?;
        sql.push_str(" AND (");
        sql.push_str(&condition);
        sql.push(')');
    }
    Ok(())
}

fn filter_condition(
    dialect: Dialect,
    object_type: ObjectType,
    filter: &Filter,
    binder: &mut Binder,
) -> Result<String, StoreError> {
    let field = filter.field.as_str();
    let target = if let Some(name) = field.strip_prefix(CUSTOM_PREFIX) {
        if name.is_empty() || name.contains(['"', '\\']) {
            return Err(filter_error(field, "invalid custom field name"));
        }
        Target::Custom(name.to_owned())
    } else {
        let column = column(object_type, field)
            .or_else(|| META.iter().find(|c| c.name == field))
            .ok_or_else(|| StoreError::UnknownField {
                object_type,
                field: field.to_owned(),
            })?;
        Target::Column(column)
    };
    match target {
        Target::Column(column) => column_condition(dialect, object_type, column, filter, binder),
        Target::Custom(name) => custom_condition(dialect, &name, filter, binder),
    }
}

fn column_condition(
    dialect: Dialect,
    object_type: ObjectType,
    column: &'static Column,
    filter: &Filter,
    binder: &mut Binder,
) -> Result<String, StoreError> {
    let name = column.name;
    let field = filter.field.as_str();
    let typed = |binder: &mut Binder, value: &Value| -> Result<String, StoreError> {
        if value.is_null() {
            return Err(filter_error(field, "null operand: use is_null"));
        }
        let arg = value_to_arg(object_type, column, value)
            .map_err(|e| filter_error(field, e.to_string()))?;
        Ok(binder.bind(arg))
    };
    match (column.kind, filter.op) {
        (_, FilterOp::IsNull) | (_, FilterOp::NotNull) => {
            let is_null = match (column.kind, dialect) {
                (Kind::List, Dialect::Sqlite) => {
                    format!(
                        "({name} IS NULL OR CASE WHEN NOT json_valid({name}) THEN 0 \
                         WHEN json_type({name}) = 'array' THEN json_array_length({name}) = 0 ELSE 0 END)"
                    )
                }
                (Kind::List, Dialect::Postgres) => {
                    format!("({name} IS NULL OR {name} = '[]'::jsonb)")
                }
                (Kind::Object, Dialect::Sqlite) => format!("({name} IS NULL OR {name} = '{{}}')"),
                (Kind::Object, Dialect::Postgres) => {
                    format!("({name} IS NULL OR {name} = '{{}}'::jsonb)")
                }
                _ => format!("{name} IS NULL"),
            };
            Ok(if filter.op == FilterOp::IsNull {
                is_null
            } else {
                format!("NOT {is_null}")
            })
        }
        (Kind::List, FilterOp::Contains) => match (dialect, &filter.value) {
            // Strings in a list (emails, phone numbers) match ignoring case, as HubSpot's do.
            (Dialect::Sqlite, Value::String(s)) => {
                let p = binder.bind(Arg::Text(Some(s.to_lowercase())));
                Ok(format!(
                    "EXISTS (SELECT 1 FROM json_each({}) WHERE lower(json_each.value) = {p})",
                    json_list(Dialect::Sqlite, name)
                ))
            }
            (Dialect::Postgres, Value::String(s)) => {
                let p = binder.bind(Arg::Text(Some(s.to_lowercase())));
                Ok(format!(
                    "EXISTS (SELECT 1 FROM jsonb_array_elements_text({}) e WHERE lower(e) = {p})",
                    json_list(Dialect::Postgres, name)
                ))
            }
            (Dialect::Sqlite, _) => {
                let p = binder.bind(sqlite_json_scalar(field, &filter.value)?);
                Ok(format!(
                    "EXISTS (SELECT 1 FROM json_each({}) WHERE json_each.value = {p})",
                    json_list(Dialect::Sqlite, name)
                ))
            }
            (Dialect::Postgres, _) => {
                let p = binder.bind(Arg::Json(Some(Value::Array(vec![filter.value.clone()]))));
                Ok(format!("{name} @> {p}"))
            }
        },
        (Kind::List | Kind::Object, _) => Err(filter_error(
            field,
            format!("{:?} is not supported on a list or object field", filter.op),
        )),
        (Kind::Text, FilterOp::Contains) => {
            let Value::String(s) = &filter.value else {
                return Err(filter_error(field, "contains needs a string"));
            };
            let p = binder.bind(Arg::Text(Some(s.to_lowercase())));
            Ok(match dialect {
                Dialect::Sqlite => format!("instr(lower({name}), {p}) > 0"),
                Dialect::Postgres => format!("strpos(lower({name}), {p}) > 0"),
            })
        }
        (_, FilterOp::Contains) => Err(filter_error(field, "contains needs a text or list field")),
        (Kind::Text, FilterOp::Eq | FilterOp::Neq) if filter.value.is_string() => {
            // Text equality ignores case, as HubSpot's search does (EQ/NEQ on strings).
            let p = typed(
                binder,
                &Value::String(filter.value.as_str().unwrap_or_default().to_lowercase()),
            )?;
            Ok(format!("lower({name}) {} {p}", sql_op(filter.op)))
        }
        (_, FilterOp::In) => {
            let Value::Array(values) = &filter.value else {
                return Err(filter_error(field, "in needs a list"));
            };
            if values.is_empty() {
                return Ok("1 = 0".to_owned());
            }
            let placeholders = values
                .iter()
                .map(|v| typed(binder, v))
                .collect::<Result<Vec<_>, _>>()?;
            Ok(format!("{name} IN ({})", placeholders.join(", ")))
        }
        (_, op) => {
            let p = typed(binder, &filter.value)?;
            Ok(format!("{name} {} {p}", sql_op(op)))
        }
    }
}

fn custom_condition(
    dialect: Dialect,
    name: &str,
    filter: &Filter,
    binder: &mut Binder,
) -> Result<String, StoreError> {
    let field = filter.field.as_str();
    let extract = match dialect {
        Dialect::Sqlite => {
            let p = binder.bind(Arg::Text(Some(format!("$.\"{name}\""))));
            format!("json_extract(custom_fields, {p})")
        }
        Dialect::Postgres => {
            let p = binder.bind(Arg::Text(Some(name.to_owned())));
            format!("(custom_fields -> {p})")
        }
    };
    let operand = |binder: &mut Binder, value: &Value| -> Result<String, StoreError> {
        if value.is_null() {
            return Err(filter_error(field, "null operand: use is_null"));
        }
        Ok(match dialect {
            Dialect::Sqlite => binder.bind(sqlite_json_scalar(field, value)?),
            Dialect::Postgres => binder.bind(Arg::Json(Some(value.clone()))),
        })
    };
    match filter.op {
        FilterOp::IsNull | FilterOp::NotNull => {
            let is_null = match dialect {
                Dialect::Sqlite => format!("{extract} IS NULL"),
                Dialect::Postgres => format!("({extract} IS NULL OR {extract} = 'null'::jsonb)"),
            };
            Ok(if filter.op == FilterOp::IsNull {
                is_null
            } else {
                format!("NOT {is_null}")
            })
        }
        FilterOp::Contains => {
            let Value::String(s) = &filter.value else {
                return Err(filter_error(field, "contains needs a string"));
            };
            let p = binder.bind(Arg::Text(Some(s.to_lowercase())));
            Ok(match dialect {
                Dialect::Sqlite => format!("instr(lower({extract}), {p}) > 0"),
                Dialect::Postgres => format!("strpos(lower(custom_fields ->> {}), {p}) > 0", {
                    // `->>` needs the key again; bind it a second time.
                    binder.bind(Arg::Text(Some(name.to_owned())))
                }),
            })
        }
        FilterOp::In => {
            let Value::Array(values) = &filter.value else {
                return Err(filter_error(field, "in needs a list"));
            };
            if values.is_empty() {
                return Ok("1 = 0".to_owned());
            }
            let placeholders = values
                .iter()
                .map(|v| operand(binder, v))
                .collect::<Result<Vec<_>, _>>()?;
            Ok(format!("{extract} IN ({})", placeholders.join(", ")))
        }
        op => {
            if let Value::Number(n) = &filter.value {
                // Custom values are often numbers stored as strings (HubSpot sends every
                // property as a string): compare numerically, and let a value that is not a
                // number match nothing rather than fail the query or sort by type.
                let number = numeric(dialect, &extract);
                let p = match dialect {
                    Dialect::Sqlite => binder.bind(sqlite_json_scalar(field, &filter.value)?),
                    Dialect::Postgres => {
                        let p = binder.bind(Arg::Text(Some(n.to_string())));
                        format!("CAST({p} AS numeric)")
                    }
                };
                return Ok(format!("{number} {} {p}", sql_op(op)));
            }
            let p = operand(binder, &filter.value)?;
            Ok(format!("{extract} {} {p}", sql_op(op)))
        }
    }
}

/// The custom value `extract` as a number: a JSON number, or a string that spells one;
/// NULL for anything else.
fn numeric(dialect: Dialect, extract: &str) -> String {
    match dialect {
        Dialect::Sqlite => format!(
            "(CASE WHEN typeof({extract}) IN ('integer', 'real') THEN {extract} \
             WHEN typeof({extract}) = 'text' AND trim({extract}) GLOB '*[0-9]*' \
             AND trim({extract}) NOT GLOB '*[^0-9.eE+-]*' THEN CAST(trim({extract}) AS REAL) END)"
        ),
        Dialect::Postgres => format!(
            "(CASE WHEN jsonb_typeof({extract}) = 'number' THEN ({extract} #>> '{{}}')::numeric \
             WHEN jsonb_typeof({extract}) = 'string' AND btrim({extract} #>> '{{}}') \
             ~ '^[-+]?([0-9]+[.]?[0-9]*|[.][0-9]+)([eE][-+]?[0-9]+)?$' \
             THEN btrim({extract} #>> '{{}}')::numeric END)"
        ),
    }
}
