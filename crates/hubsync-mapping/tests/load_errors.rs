//! Loading: broken mapping files are reported with file, line and expression; overrides work
//! file by file.

use std::fs;

use hubsync_core::ObjectType;
use hubsync_mapping::{EMBEDDED, MappingError, MappingOptions, Mappings};
use serde_json::json;

fn load_with(files: &[(&str, &str)]) -> (tempfile::TempDir, Result<Mappings, MappingError>) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    for (name, text) in files {
        fs::write(dir.path().join(name), text).expect("the file is written");
    }
    let options = MappingOptions {
        dir: Some(dir.path().to_owned()),
        ..MappingOptions::default()
    };
    let result = Mappings::load(&options);
    (dir, result)
}

#[test]
fn a_broken_expression_is_reported_with_file_line_and_source() {
    let broken = "/* deals */\n{\n  \"properties\": {\n    \"dealname\": name,\n    \"amount\" amount\n  }\n}\n";
    let (_dir, result) = load_with(&[("deals.to_hubspot.jsonata", broken)]);
    let err = result.unwrap_err();
    let MappingError::Compile {
        file,
        line,
        snippet,
        ..
    } = &err
    else {
        panic!("expected a compile error, got {err}");
    };
    assert!(file.ends_with("deals.to_hubspot.jsonata"), "{file}");
    assert_eq!(*line, 5);
    assert!(snippet.contains("\"amount\" amount"), "{snippet}");
    let text = err.to_string();
    assert!(text.contains("deals.to_hubspot.jsonata:5:"), "{text}");
}

#[test]
fn an_unknown_function_is_caught_at_load() {
    let (_dir, result) = load_with(&[(
        "contacts.to_unified.jsonata",
        "{ \"first_name\": $uppercas(properties.firstname) }",
    )]);
    let err = result.unwrap_err();
    assert!(
        matches!(&err, MappingError::Evaluation { file, .. } if file.ends_with("contacts.to_unified.jsonata")),
        "{err}"
    );
}

#[test]
fn a_malformed_fields_file_is_reported_with_its_line() {
    let text = "[fields.name]\ntype = \"string\"\nproperties = [\"name\"]\nops = [\"eq\", \"sounds_like\"]\n";
    let (_dir, result) = load_with(&[("companies.fields.toml", text)]);
    let err = result.unwrap_err();
    assert!(
        matches!(&err, MappingError::Spec { file, line: Some(4), .. } if file.ends_with("companies.fields.toml")),
        "{err}"
    );
}

#[test]
fn an_inconsistent_fields_file_is_refused() {
    let contacts = EMBEDDED
        .iter()
        .find(|(n, _)| *n == "contacts.fields.toml")
        .unwrap()
        .1;
    let text = contacts.replace(
        "properties = [\"jobtitle\"]",
        "properties = [\"firstname\"]",
    );
    let (_dir, result) = load_with(&[("contacts.fields.toml", &text)]);
    let err = result.unwrap_err();
    assert!(err.to_string().contains("claimed by both"), "{err}");
}

#[tokio::test]
async fn an_override_replaces_one_file_and_keeps_the_others() {
    let expr = "{ \"name\": $uppercase(properties.name) }";
    let (_dir, result) = load_with(&[("companies.to_unified.jsonata", expr)]);
    let m = result.unwrap();
    let got = m
        .to_unified(
            ObjectType::Companies,
            json!({"id": "1", "properties": {"name": "acme", "tier__c": "gold"}}),
        )
        .await
        .unwrap();
    assert_eq!(
        got.to_unified(),
        json!({"name": "ACME", "custom_fields": {"tier__c": "gold"}})
    );
    let contact = m
        .to_unified(
            ObjectType::Contacts,
            json!({"id": "1", "properties": {"firstname": "Ada"}}),
        )
        .await
        .unwrap();
    assert_eq!(contact.to_unified(), json!({"first_name": "Ada"}));
}

#[tokio::test]
async fn an_expression_producing_an_undeclared_field_is_a_mapping_error() {
    // Caught at load when it shows on an empty record…
    let (_dir, result) = load_with(&[(
        "companies.to_unified.jsonata",
        "{ \"name\": properties.name, \"colour\": \"red\" }",
    )]);
    let err = result.unwrap_err();
    assert!(
        matches!(&err, MappingError::Output { file, reason } if file.ends_with("companies.to_unified.jsonata") && reason.contains("colour")),
        "{err}"
    );
    // …and per record otherwise.
    let (_dir, result) = load_with(&[(
        "companies.to_unified.jsonata",
        "{ \"name\": properties.name, \"colour\": properties.name ? \"red\" }",
    )]);
    let m = result.unwrap();
    let err = m
        .to_unified(
            ObjectType::Companies,
            json!({"id": "1", "properties": {"name": "Acme"}}),
        )
        .await
        .unwrap_err();
    assert!(err.is_record_error());
    assert!(
        matches!(&err, MappingError::Output { reason, .. } if reason.contains("colour")),
        "{err}"
    );
}

#[tokio::test]
async fn a_runaway_expression_is_stopped_by_the_time_limit() {
    let expr = "( $f := function($n) { $n > 0 ? $f($n - 1) + $f($n - 1) : 1 }; { \"name\": properties.name ? $string($f(40)) } )";
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("companies.to_unified.jsonata"), expr).unwrap();
    let options = MappingOptions {
        dir: Some(dir.path().to_owned()),
        timeout_ms: 50,
        ..MappingOptions::default()
    };
    let m = Mappings::load(&options).unwrap();
    let err = m
        .to_unified(
            ObjectType::Companies,
            json!({"id": "1", "properties": {"name": "x"}}),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, MappingError::Evaluation { .. }), "{err}");
}
