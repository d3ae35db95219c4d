//! The translation of one record, run on a mapping thread: evaluate the JSONata expression,
//! then check its output against the field declarations and bring it to canonical form.

use hubsync_core::FieldMap;
use hubsync_core::record::CUSTOM_PREFIX;
use jsonata_core::Expression;
use jsonata_core::value::JValue;
use serde_json::Value;

use crate::Properties;
use crate::error::MappingError;
use crate::spec::ObjectSpec;
use crate::value;

/// The canonical, validated form of a unified record (the mapped and custom fields; other
/// fields, such as associations, pass through untouched).
pub(crate) fn normalize(spec: &ObjectSpec, fields: &FieldMap) -> Result<FieldMap, MappingError> {
    let mut out = FieldMap::new();
    for (name, v) in fields.iter() {
        if let Some(custom) = name.strip_prefix(CUSTOM_PREFIX) {
            check_custom_name(spec, name, custom)?;
            if let Some(v) = value::canonical_custom(name, v)? {
                out.set(name, v);
            }
        } else if let Some(field) = spec.fields.get(name).filter(|f| f.mapped) {
            if let Some(v) = value::canonical(name, field, v)? {
                out.set(name, v);
            }
        } else {
            out.set(name, v.clone());
        }
    }
    Ok(out)
}

fn check_custom_name(spec: &ObjectSpec, field: &str, name: &str) -> Result<(), MappingError> {
    if !value::valid_property_name(name) {
        return Err(MappingError::invalid(
            field,
            "not a valid HubSpot property name",
        ));
    }
    if spec.is_mapped_property(name) {
        return Err(MappingError::invalid(
            field,
            "the property is mapped to a unified field",
        ));
    }
    if spec.is_reserved(name) {
        return Err(MappingError::invalid(
            field,
            "the property is computed by HubSpot",
        ));
    }
    Ok(())
}

fn evaluate(file: &str, expr: &Expression, input: Value) -> Result<Value, MappingError> {
    let input = JValue::from(input);
    // jsonata-core reports failures as errors; a panic would be a bug in it, and must not take
    // the thread (and every later record) down with it.
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| expr.evaluate(&input)));
    match result {
        Ok(Ok(v)) => Ok(Value::from(&v)),
        Ok(Err(e)) => Err(MappingError::Evaluation {
            file: file.to_owned(),
            message: e.to_string(),
        }),
        Err(_) => Err(MappingError::Evaluation {
            file: file.to_owned(),
            message: "the evaluator panicked".into(),
        }),
    }
}

/// HubSpot object (`{id, properties}`) → unified record.
pub(crate) fn to_unified(
    spec: &ObjectSpec,
    file: &str,
    expr: &Expression,
    object: Value,
) -> Result<FieldMap, MappingError> {
    let mut object = object;
    let Some(properties) = object.get_mut("properties").and_then(Value::as_object_mut) else {
        return Err(MappingError::invalid(
            "properties",
            "the HubSpot object has no `properties` map",
        ));
    };
    // The expression sees the mapped properties that have a value (null and "" both mean
    // "no value" in HubSpot); custom fields are every other property that is not reserved.
    let mut custom: Vec<(String, Value)> = Vec::new();
    properties.retain(|name, v| {
        if v.is_null() || v.as_str() == Some("") {
            return false;
        }
        if spec.is_mapped_property(name) {
            return true;
        }
        if !spec.is_reserved(name) {
            custom.push((name.clone(), std::mem::take(v)));
        }
        false
    });
    let output = evaluate(file, expr, object)?;
    let output = match output {
        Value::Object(map) => map,
        Value::Null => serde_json::Map::new(),
        other => {
            return Err(MappingError::Output {
                file: file.to_owned(),
                reason: format!("expected an object, got {}", value::kind(&other)),
            });
        }
    };
    let mut fields = FieldMap::new();
    for (name, v) in custom {
        let field = format!("{CUSTOM_PREFIX}{name}");
        if let Some(v) = value::canonical_custom(&field, &v)? {
            fields.set(field, v);
        }
    }
    for (name, v) in output {
        if name == "custom_fields" {
            // A mapping may add or override custom fields explicitly.
            let custom = match &v {
                Value::Object(custom) => custom,
                Value::Null => continue,
                other => {
                    return Err(MappingError::Output {
                        file: file.to_owned(),
                        reason: format!(
                            "`custom_fields` must be an object, got {}",
                            value::kind(other)
                        ),
                    });
                }
            };
            for (custom, cv) in custom {
                let field = format!("{CUSTOM_PREFIX}{custom}");
                check_custom_name(spec, &field, custom)?;
                fields.set(
                    field.clone(),
                    value::canonical_custom(&field, cv)?.unwrap_or(Value::Null),
                );
            }
            continue;
        }
        let Some(field) = spec.fields.get(&name).filter(|f| f.mapped) else {
            return Err(MappingError::Output {
                file: file.to_owned(),
                reason: format!("field `{name}` is not declared as a mapped field"),
            });
        };
        if let Some(v) = value::canonical(&name, field, &v)? {
            fields.set(name, v);
        }
    }
    Ok(fields)
}

/// Unified record → HubSpot properties: every mapped property (`""` where the record has no
/// value, which clears it in HubSpot) and the record's custom properties.
pub(crate) fn to_hubspot(
    spec: &ObjectSpec,
    file: &str,
    expr: &Expression,
    fields: &FieldMap,
) -> Result<Properties, MappingError> {
    let fields = normalize(spec, fields)?;
    // The expression sees the mapped fields and the custom ones, nested as `custom_fields`.
    let mut input = serde_json::Map::new();
    let mut custom = serde_json::Map::new();
    for (name, v) in fields.iter() {
        if let Some(c) = name.strip_prefix(CUSTOM_PREFIX) {
            custom.insert(c.to_owned(), v.clone());
        } else if spec.fields.get(name).is_some_and(|f| f.mapped) {
            input.insert(name.to_owned(), v.clone());
        }
    }
    if !custom.is_empty() {
        input.insert("custom_fields".to_owned(), Value::Object(custom));
    }
    let mut output = evaluate(file, expr, Value::Object(input))?;
    let props = match output.get_mut("properties").map(Value::take) {
        Some(Value::Object(map)) => map,
        None | Some(Value::Null) => serde_json::Map::new(),
        Some(other) => {
            return Err(MappingError::Output {
                file: file.to_owned(),
                reason: format!(
                    "`properties` must be an object, got {}",
                    value::kind(&other)
                ),
            });
        }
    };
    let mapped = &spec.mapped;
    let mut out: Properties = mapped.iter().map(|p| (p.clone(), String::new())).collect();
    for (name, v) in props {
        if !mapped.contains(&name) {
            return Err(MappingError::Output {
                file: file.to_owned(),
                reason: format!("property `{name}` is not declared in any field's `properties`"),
            });
        }
        let text = match v {
            Value::Null => String::new(),
            Value::String(s) => s,
            Value::Bool(b) => b.to_string(),
            Value::Number(n) => value::number_text(&n),
            other => {
                return Err(MappingError::Output {
                    file: file.to_owned(),
                    reason: format!(
                        "property `{name}` must be a scalar, got {}",
                        value::kind(&other)
                    ),
                });
            }
        };
        out.insert(name, text);
    }
    for (name, v) in fields.iter() {
        if let (Some(custom), Value::String(s)) = (name.strip_prefix(CUSTOM_PREFIX), v) {
            out.insert(custom.to_owned(), s.clone());
        }
    }
    Ok(out)
}

/// The properties to send to move HubSpot from `base` to `new` (both full outputs of
/// `to_hubspot`): changed ones, and `""` for ones `new` no longer has.
pub fn property_changes(base: &Properties, new: &Properties) -> Properties {
    let mut out: Properties = new
        .iter()
        .filter(|(k, v)| base.get(*k) != Some(*v))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    for (k, v) in base {
        if !new.contains_key(k) && !v.is_empty() {
            out.insert(k.clone(), String::new());
        }
    }
    out
}
