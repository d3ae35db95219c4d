//! Validation and the canonical form of unified values.
//!
//! Every value that enters a [`FieldMap`] through this crate is in canonical form, so that the
//! same record always has the same fingerprint whichever side it came from: empty strings and
//! empty lists/objects are "no value", integral numbers are `i64` (`50000`, `"50000"` and
//! `50000.0` are one value), dates are `YYYY-MM-DD`, instants RFC 3339 UTC with milliseconds,
//! custom properties strings.

use serde_json::{Map, Number, Value};
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::{Date, OffsetDateTime, UtcOffset};

use crate::error::MappingError;
use crate::spec::{FieldSpec, FieldType};

/// Largest integer an `f64` holds exactly (2^53).
const EXACT_INT: f64 = 9_007_199_254_740_992.0;

/// The canonical form of `value` for a field of `spec`; `Ok(None)` means "no value".
pub(crate) fn canonical(
    field: &str,
    spec: &FieldSpec,
    value: &Value,
) -> Result<Option<Value>, MappingError> {
    if value.is_null() {
        return Ok(None);
    }
    match spec.ty {
        FieldType::String => scalar_text(field, value).map(|s| s.map(Value::String)),
        FieldType::Integer => match number_of(field, value)? {
            None => Ok(None),
            Some(n) if n.fract() == 0.0 && n.abs() < EXACT_INT => Ok(Some(Value::from(n as i64))),
            Some(n) => Err(MappingError::invalid(
                field,
                format!("{n} is not a whole number"),
            )),
        },
        FieldType::Number => Ok(number_of(field, value)?.map(canonical_number)),
        FieldType::Date => date_of(field, value).map(|d| d.map(|d| Value::String(format_date(d)))),
        FieldType::Datetime => {
            instant_of(field, value).map(|t| t.map(|t| Value::String(format_instant(t))))
        }
        FieldType::StringList | FieldType::EmailList => list(field, spec, value),
        FieldType::Object => object(field, spec, value),
    }
}

/// The canonical form of a custom property value: a non-empty string.
pub(crate) fn canonical_custom(field: &str, value: &Value) -> Result<Option<Value>, MappingError> {
    match value {
        Value::Bool(b) => Ok(Some(Value::String(b.to_string()))),
        other => scalar_text(field, other).map(|s| s.map(Value::String)),
    }
}

/// A string (numbers as their canonical text); `None` for null or empty.
fn scalar_text(field: &str, value: &Value) -> Result<Option<String>, MappingError> {
    match value {
        Value::Null => Ok(None),
        Value::String(s) if s.is_empty() => Ok(None),
        Value::String(s) => Ok(Some(s.clone())),
        Value::Number(n) => Ok(Some(number_text(n))),
        other => Err(MappingError::invalid(
            field,
            format!("expected a string, got {}", kind(other)),
        )),
    }
}

fn number_of(field: &str, value: &Value) -> Result<Option<f64>, MappingError> {
    let n = match value {
        Value::Null => return Ok(None),
        Value::String(s) if s.trim().is_empty() => return Ok(None),
        Value::String(s) => s
            .trim()
            .parse::<f64>()
            .map_err(|_| MappingError::invalid(field, format!("{s:?} is not a number")))?,
        Value::Number(n) => n
            .as_f64()
            .ok_or_else(|| MappingError::invalid(field, format!("{n} is out of range")))?,
        other => {
            return Err(MappingError::invalid(
                field,
                format!("expected a number, got {}", kind(other)),
            ));
        }
    };
    if n.is_finite() {
        Ok(Some(n))
    } else {
        Err(MappingError::invalid(field, "the number is not finite"))
    }
}

/// `i64` when integral (and exact), `f64` otherwise.
pub(crate) fn canonical_number(n: f64) -> Value {
    if n.fract() == 0.0 && n.abs() < EXACT_INT {
        Value::from(n as i64)
    } else {
        Number::from_f64(n)
            .map(Value::Number)
            .unwrap_or(Value::Null)
    }
}

/// The decimal text HubSpot gets for a number.
pub(crate) fn number_text(n: &Number) -> String {
    match n.as_f64() {
        Some(f) if !n.is_i64() && !n.is_u64() => match canonical_number(f) {
            Value::Number(c) => c.to_string(),
            _ => n.to_string(),
        },
        _ => n.to_string(),
    }
}

fn date_of(field: &str, value: &Value) -> Result<Option<Date>, MappingError> {
    if let Value::String(s) = value
        && let Ok(d) = Date::parse(s.trim(), format_description!("[year]-[month]-[day]"))
    {
        return Ok(Some(d));
    }
    Ok(instant_of(field, value)?.map(|t| t.to_offset(UtcOffset::UTC).date()))
}

/// An instant from RFC 3339 text, a `YYYY-MM-DD` date (midnight UTC) or epoch milliseconds
/// (as a number or digits, as webhooks send them).
pub(crate) fn instant_of(
    field: &str,
    value: &Value,
) -> Result<Option<OffsetDateTime>, MappingError> {
    let bad = |what: &str| MappingError::invalid(field, format!("{what} is not a date or time"));
    match value {
        Value::Null => Ok(None),
        Value::String(s) if s.trim().is_empty() => Ok(None),
        Value::String(s) => {
            let s = s.trim();
            if let Ok(t) = OffsetDateTime::parse(s, &Rfc3339) {
                return Ok(Some(t));
            }
            if let Ok(d) = Date::parse(s, format_description!("[year]-[month]-[day]")) {
                return Ok(Some(d.midnight().assume_utc()));
            }
            if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
                let ms: i64 = s.parse().map_err(|_| bad(s))?;
                return from_epoch_ms(ms).map(Some).ok_or_else(|| bad(s));
            }
            Err(bad(&format!("{s:?}")))
        }
        Value::Number(n) => match n.as_i64() {
            Some(ms) => from_epoch_ms(ms)
                .map(Some)
                .ok_or_else(|| bad(&n.to_string())),
            None => Err(bad(&n.to_string())),
        },
        other => Err(bad(kind(other))),
    }
}

fn from_epoch_ms(ms: i64) -> Option<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).ok()
}

/// Epoch milliseconds of an instant.
pub(crate) fn epoch_ms(t: OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1_000_000) as i64
}

pub(crate) fn format_date(d: Date) -> String {
    let (y, m, day) = (d.year(), u8::from(d.month()), d.day());
    format!("{y:04}-{m:02}-{day:02}")
}

pub(crate) fn format_instant(t: OffsetDateTime) -> String {
    let t = t.to_offset(UtcOffset::UTC);
    format!(
        "{}T{:02}:{:02}:{:02}.{:03}Z",
        format_date(t.date()),
        t.hour(),
        t.minute(),
        t.second(),
        t.millisecond()
    )
}

fn list(field: &str, spec: &FieldSpec, value: &Value) -> Result<Option<Value>, MappingError> {
    let Value::Array(items) = value else {
        return Err(MappingError::invalid(
            field,
            format!("expected an array of strings, got {}", kind(value)),
        ));
    };
    let mut out: Vec<Value> = Vec::with_capacity(items.len());
    for item in items {
        let text = match item {
            Value::String(s) => s.trim(),
            Value::Null => continue,
            other => {
                return Err(MappingError::invalid(
                    field,
                    format!("expected an array of strings, found {}", kind(other)),
                ));
            }
        };
        if text.is_empty() {
            continue;
        }
        if spec.ty == FieldType::EmailList {
            check_email(field, text)?;
            if out
                .iter()
                .any(|o| o.as_str().is_some_and(|o| o.eq_ignore_ascii_case(text)))
            {
                return Err(MappingError::invalid(
                    field,
                    format!("{text:?} is listed twice"),
                ));
            }
        }
        out.push(Value::String(text.to_owned()));
    }
    if let Some(max) = spec.max_items
        && out.len() > max
    {
        return Err(MappingError::invalid(
            field,
            format!("holds {} values; HubSpot keeps at most {max}", out.len()),
        ));
    }
    Ok((!out.is_empty()).then_some(Value::Array(out)))
}

/// A deliberately small check: what HubSpot's `;`-separated list and its dedupe key need.
fn check_email(field: &str, email: &str) -> Result<(), MappingError> {
    let bad = |why: &str| {
        MappingError::invalid(field, format!("{email:?} is not an e-mail address: {why}"))
    };
    if email
        .chars()
        .any(|c| c.is_whitespace() || c == ';' || c == ',')
    {
        return Err(bad("it contains a space or a list separator"));
    }
    let Some((local, domain)) = email.split_once('@') else {
        return Err(bad("it has no `@`"));
    };
    if local.is_empty() || domain.is_empty() || domain.contains('@') {
        return Err(bad("it needs one `@` between a name and a domain"));
    }
    // HubSpot refuses a domain without a dot, and one such address fails a whole batch write.
    if !domain.contains('.')
        || domain.starts_with('.')
        || domain.ends_with('.')
        || domain.contains("..")
    {
        return Err(bad("its domain is not a dotted name"));
    }
    if email.len() > 254 {
        return Err(bad("it is longer than 254 characters"));
    }
    Ok(())
}

fn object(field: &str, spec: &FieldSpec, value: &Value) -> Result<Option<Value>, MappingError> {
    let Value::Object(entries) = value else {
        return Err(MappingError::invalid(
            field,
            format!("expected an object, got {}", kind(value)),
        ));
    };
    // Keys in sorted order: serde_json keeps insertion order when its `preserve_order`
    // feature is on (jsonata-core turns it on), and the fingerprint hashes the serialization.
    let mut sorted: Vec<(&String, &Value)> = entries.iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(b.0));
    let mut out = Map::new();
    for (key, v) in sorted {
        if !spec.keys.iter().any(|k| k == key) {
            return Err(MappingError::invalid(
                field,
                format!(
                    "unknown key `{key}` (expected one of {})",
                    spec.keys.join(", ")
                ),
            ));
        }
        if let Some(text) = scalar_text(&format!("{field}.{key}"), v)? {
            out.insert(key.clone(), Value::String(text));
        }
    }
    Ok((!out.is_empty()).then_some(Value::Object(out)))
}

/// A short name for a JSON value's kind, for error messages (never the value itself).
pub(crate) fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Whether a custom property name is one HubSpot could have (and safe as a JSON path key).
pub(crate) fn valid_property_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && name.len() <= 100
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec(ty: FieldType) -> FieldSpec {
        FieldSpec {
            ty,
            properties: vec!["p".into()],
            mapped: true,
            max_items: None,
            keys: vec![],
            column: None,
            ops: vec![],
            search: None,
        }
    }

    #[test]
    fn numbers_in_any_spelling_have_one_canonical_form() {
        let s = spec(FieldType::Number);
        for v in [
            json!(50000),
            json!("50000"),
            json!(50000.0),
            json!("50000.00"),
            json!(" 5e4 "),
        ] {
            assert_eq!(canonical("f", &s, &v).unwrap(), Some(json!(50000)), "{v}");
        }
        assert_eq!(
            canonical("f", &s, &json!("1234.5")).unwrap(),
            Some(json!(1234.5))
        );
        assert_eq!(canonical("f", &s, &json!("")).unwrap(), None);
        assert!(matches!(
            canonical("annual_revenue", &s, &json!("lots")),
            Err(MappingError::InvalidValue { field, .. }) if field == "annual_revenue"
        ));
    }

    #[test]
    fn integers_reject_fractions() {
        let s = spec(FieldType::Integer);
        assert_eq!(canonical("f", &s, &json!("25")).unwrap(), Some(json!(25)));
        assert!(canonical("f", &s, &json!("25.5")).is_err());
    }

    #[test]
    fn dates_accept_iso_datetimes_and_epoch_ms() {
        let s = spec(FieldType::Date);
        for v in [
            json!("2024-01-17"),
            json!("2024-01-17T19:55:04.281Z"),
            json!("1705449600000"),
            json!(1705449600000_i64),
        ] {
            assert_eq!(
                canonical("f", &s, &v).unwrap(),
                Some(json!("2024-01-17")),
                "{v}"
            );
        }
        assert!(canonical("f", &s, &json!("17/01/2024")).is_err());
    }

    #[test]
    fn email_lists_are_checked() {
        let s = spec(FieldType::EmailList);
        assert_eq!(
            canonical("e", &s, &json!(["a@x.com", "", "b@y.org"])).unwrap(),
            Some(json!(["a@x.com", "b@y.org"]))
        );
        assert!(canonical("e", &s, &json!("a@x.com")).is_err());
        assert!(canonical("e", &s, &json!(["a@x.com;b@y.org"])).is_err());
        assert!(canonical("e", &s, &json!(["not-an-email"])).is_err());
        assert!(canonical("e", &s, &json!(["root@localhost"])).is_err());
        assert!(canonical("e", &s, &json!(["a@x..com"])).is_err());
        assert!(canonical("e", &s, &json!(["a@x.com", "A@X.com"])).is_err());
        assert_eq!(canonical("e", &s, &json!([])).unwrap(), None);
    }

    #[test]
    fn instants_format_with_milliseconds_in_utc() {
        let t = instant_of("t", &json!("2024-01-17T20:55:04.281+01:00"))
            .unwrap()
            .unwrap();
        assert_eq!(format_instant(t), "2024-01-17T19:55:04.281Z");
        assert_eq!(epoch_ms(t), 1_705_521_304_281);
    }
}
