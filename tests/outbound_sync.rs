//! Outbound: app writes reach HubSpot in as few calls as the batch limit allows, once.

mod common;

use common::TestBed;
use hubsync_core::{Changes, ObjectType};
use hubsync_emulator::ObjectKind;
use serde_json::json;

#[tokio::test]
async fn app_inserts_reach_hubspot_in_batches_of_100() {
    let bed = TestBed::start().await;
    for i in 0..250 {
        bed.app_insert(
            ObjectType::Contacts,
            json!({"first_name": format!("Ada{i}"), "last_name": "Lovelace", "email_addresses": [format!("ada{i}@example.com")]}),
        )
        .await;
    }
    let calls = bed.push_all().await;
    assert_eq!(bed.remote_count(ObjectKind::Contact), 250);
    assert_eq!(calls, 3, "250 creates must cost 3 batch calls");
    assert_eq!(bed.write_calls(), 3);
    // Nothing left to do: a second drain costs nothing.
    assert_eq!(bed.push_all().await, 0);
}

#[tokio::test]
async fn repeated_edits_of_one_record_coalesce_into_one_write_of_changed_fields() {
    let bed = TestBed::start().await;
    let id = bed
        .app_insert(ObjectType::Contacts, json!({"first_name": "Grace", "last_name": "Hopper", "email_addresses": ["grace@example.com"]}))
        .await;
    bed.push_all().await;
    let before = bed.write_calls();
    for title in ["Captain", "Commodore", "Rear Admiral"] {
        let changes: Changes = [("title".to_owned(), json!(title))].into_iter().collect();
        bed.store().update_record(bed.portal, ObjectType::Contacts, id, &changes).await.unwrap();
    }
    let calls = bed.push_all().await;
    assert_eq!(calls, 1);
    assert_eq!(bed.write_calls() - before, 1);
    let record = bed.store().get_record(bed.portal, ObjectType::Contacts, id).await.unwrap().unwrap();
    let hubspot_id = record.hubspot_id.expect("linked to HubSpot").0;
    let remote = bed.remote(ObjectKind::Contact, hubspot_id).expect("exists in HubSpot");
    assert_eq!(remote["properties"]["jobtitle"], "Rear Admiral");
}

#[tokio::test]
async fn an_edit_back_to_the_synced_value_costs_no_call() {
    let bed = TestBed::start().await;
    let id = bed
        .app_insert(ObjectType::Companies, json!({"name": "Acme", "domain": "acme.example"}))
        .await;
    bed.push_all().await;
    let before = bed.write_calls();
    let to = |v: &str| -> Changes { [("name".to_owned(), json!(v))].into_iter().collect() };
    bed.store().update_record(bed.portal, ObjectType::Companies, id, &to("Acme Corp")).await.unwrap();
    bed.store().update_record(bed.portal, ObjectType::Companies, id, &to("Acme")).await.unwrap();
    assert_eq!(bed.push_all().await, 0);
    assert_eq!(bed.write_calls(), before);
}

#[tokio::test]
async fn local_delete_archives_the_hubspot_record() {
    let bed = TestBed::start().await;
    let id = bed.app_insert(ObjectType::Deals, json!({"name": "Big deal", "stage": "appointmentscheduled", "pipeline": "default", "amount": 1000})).await;
    bed.push_all().await;
    let hubspot_id = bed.store().get_record(bed.portal, ObjectType::Deals, id).await.unwrap().unwrap().hubspot_id.unwrap().0;
    assert_eq!(bed.remote_count(ObjectKind::Deal), 1);
    bed.store().delete_record(bed.portal, ObjectType::Deals, id).await.unwrap();
    bed.push_all().await;
    assert_eq!(bed.remote_count(ObjectKind::Deal), 0);
    let archived = bed.remote(ObjectKind::Deal, hubspot_id).expect("still in the recycle bin");
    assert_eq!(archived["archived"], true);
}
