//! The mapping service as the engine uses it: shared across tasks, batches in flight at once,
//! property diffs, and shutdown.

use std::sync::Arc;

use hubsync_core::{FieldMap, ObjectType};
use hubsync_mapping::{MappingError, MappingOptions, Mappings, Properties, property_changes};
use serde_json::json;

#[test]
fn the_service_can_be_shared_across_tasks() {
    fn assert_send_sync<T: Send + Sync + 'static>() {}
    assert_send_sync::<Mappings>();
    assert_send_sync::<MappingError>();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_batches_each_get_their_own_answers_in_order() {
    let m = Arc::new(
        Mappings::load(&MappingOptions {
            workers: 3,
            ..MappingOptions::default()
        })
        .expect("loads"),
    );
    let mut tasks = Vec::new();
    for t in 0..8 {
        let m = Arc::clone(&m);
        tasks.push(tokio::spawn(async move {
            let objects = (0..50)
                .map(|i| json!({"id": i.to_string(), "properties": {"name": format!("c{t}-{i}"), "numberofemployees": i.to_string()}}))
                .collect();
            let out = m.to_unified_batch(ObjectType::Companies, objects).await.expect("the pool answers");
            for (i, record) in out.into_iter().enumerate() {
                let record = record.expect("valid");
                assert_eq!(record.get("name"), &json!(format!("c{t}-{i}")));
                assert_eq!(record.get("employee_count"), &json!(i));
            }
        }));
    }
    for task in tasks {
        task.await.expect("no task panicked");
    }
}

#[tokio::test]
async fn property_changes_send_only_what_moved_and_clear_what_went() {
    let m = Mappings::embedded().expect("loads");
    let base = FieldMap::from_unified(
        &json!({"first_name": "Ada", "title": "Countess", "custom_fields": {"a__c": "1", "b__c": "2"}}),
    );
    let new = FieldMap::from_unified(
        &json!({"first_name": "Ada", "title": "Analyst", "custom_fields": {"a__c": "1"}}),
    );
    let base = m
        .to_hubspot(ObjectType::Contacts, &base)
        .await
        .expect("maps");
    let new = m
        .to_hubspot(ObjectType::Contacts, &new)
        .await
        .expect("maps");
    let expected: Properties = [("jobtitle", "Analyst"), ("b__c", "")]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    assert_eq!(property_changes(&base, &new), expected);
}

#[tokio::test]
async fn normalize_gives_app_rows_the_form_hubspot_records_have() {
    let m = Mappings::embedded().expect("loads");
    let app_row = FieldMap::from_unified(&json!({
        "name": "Acme", "employee_count": "25", "annual_revenue": 50000.0,
        "address": {"street": "1 Main St", "city": "", "country": "US"},
        "company_id": 17, "custom_fields": {"arr__c": 50000, "flag__c": true}
    }));
    let got = m.normalize(ObjectType::Companies, &app_row).expect("valid");
    assert_eq!(
        got.to_unified(),
        json!({
            "name": "Acme", "employee_count": 25, "annual_revenue": 50000,
            "address": {"country": "US", "street": "1 Main St"},
            "company_id": 17, "custom_fields": {"arr__c": "50000", "flag__c": "true"}
        })
    );
    // Canonical nested objects serialize with sorted keys, whatever order they came in.
    assert_eq!(
        serde_json::to_string(got.get("address")).expect("serializes"),
        r#"{"country":"US","street":"1 Main St"}"#
    );
}
