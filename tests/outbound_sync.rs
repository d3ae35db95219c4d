//! Outbound: app writes reach HubSpot in as few calls as the batch limit allows, once.

#![allow(clippy::unwrap_used)]

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
async fn a_smaller_configured_batch_size_caps_the_records_of_every_call() {
    let mut bed = TestBed::start().await;
    bed.engine.settings = std::sync::Arc::new(hubsync_engine::EngineSettings {
        outbound_batch: 10,
        ..(*bed.engine.settings).clone()
    });
    let mut ids = Vec::new();
    for i in 0..25 {
        ids.push(
            bed.app_insert(
                ObjectType::Contacts,
                json!({"first_name": format!("Kat{i}"), "email_addresses": [format!("kat{i}@example.com")]}),
            )
            .await,
        );
    }
    assert_eq!(bed.push_all().await, 3, "25 creates in batches of 10");
    assert_eq!(bed.remote_count(ObjectKind::Contact), 25);
    for (i, id) in ids.iter().enumerate() {
        let changes: Changes = [("title".to_owned(), json!(format!("T{i}")))]
            .into_iter()
            .collect();
        bed.store()
            .update_record(bed.portal, ObjectType::Contacts, *id, &changes)
            .await
            .unwrap();
    }
    assert_eq!(bed.push_all().await, 3, "25 updates in batches of 10");
    assert_eq!(bed.write_calls(), 6);
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
        bed.store()
            .update_record(bed.portal, ObjectType::Contacts, id, &changes)
            .await
            .unwrap();
    }
    let calls = bed.push_all().await;
    assert_eq!(calls, 1);
    assert_eq!(bed.write_calls() - before, 1);
    let record = bed
        .store()
        .get_record(bed.portal, ObjectType::Contacts, id)
        .await
        .unwrap()
        .unwrap();
    let hubspot_id = record.hubspot_id.expect("linked to HubSpot").0;
    let remote = bed
        .remote(ObjectKind::Contact, hubspot_id)
        .expect("exists in HubSpot");
    assert_eq!(remote["properties"]["jobtitle"], "Rear Admiral");
}

#[tokio::test]
async fn an_edit_back_to_the_synced_value_costs_no_call() {
    let bed = TestBed::start().await;
    let id = bed
        .app_insert(
            ObjectType::Companies,
            json!({"name": "Acme", "domain": "acme.example"}),
        )
        .await;
    bed.push_all().await;
    let before = bed.write_calls();
    let to = |v: &str| -> Changes { [("name".to_owned(), json!(v))].into_iter().collect() };
    bed.store()
        .update_record(bed.portal, ObjectType::Companies, id, &to("Acme Corp"))
        .await
        .unwrap();
    bed.store()
        .update_record(bed.portal, ObjectType::Companies, id, &to("Acme"))
        .await
        .unwrap();
    assert_eq!(bed.push_all().await, 0);
    assert_eq!(bed.write_calls(), before);
}

#[tokio::test]
async fn local_delete_archives_the_hubspot_record() {
    let bed = TestBed::start().await;
    let id = bed.app_insert(ObjectType::Deals, json!({"name": "Big deal", "stage": "appointmentscheduled", "pipeline": "default", "amount": 1000})).await;
    bed.push_all().await;
    let hubspot_id = bed
        .store()
        .get_record(bed.portal, ObjectType::Deals, id)
        .await
        .unwrap()
        .unwrap()
        .hubspot_id
        .unwrap()
        .0;
    assert_eq!(bed.remote_count(ObjectKind::Deal), 1);
    bed.store()
        .delete_record(bed.portal, ObjectType::Deals, id)
        .await
        .unwrap();
    bed.push_all().await;
    assert_eq!(bed.remote_count(ObjectKind::Deal), 0);
    let archived = bed
        .remote(ObjectKind::Deal, hubspot_id)
        .expect("still in the recycle bin");
    assert_eq!(archived["archived"], true);
}

#[tokio::test]
async fn a_create_whose_answer_was_lost_is_not_created_twice() {
    let bed = TestBed::start().await;
    // HubSpot carries out every write but answers 5xx: the client cannot tell it happened.
    bed.emulator.admin().set_faults(hubsync_emulator::Faults {
        api_5xx_after_write_pct: 100.0,
        ..Default::default()
    });
    for i in 0..30 {
        bed.app_insert(ObjectType::Contacts, json!({"first_name": format!("Lost{i}"), "email_addresses": [format!("lost{i}@example.com")]})).await;
    }
    // The step gives up on the batch for now (retryable), nothing is acknowledged.
    let step = hubsync_engine::outbound::push_once(&bed.engine, bed.portal)
        .await
        .unwrap();
    assert_eq!(step.written, 0);
    assert_eq!(
        bed.remote_count(ObjectKind::Contact),
        30,
        "HubSpot did create them"
    );
    // As after a crash: the answer never reached us. Recovery retries the same upserts.
    bed.emulator
        .admin()
        .set_faults(hubsync_emulator::Faults::default());
    let store = bed.store();
    let mut rows = Vec::new();
    for _ in 0..50 {
        let _ = hubsync_engine::outbound::push_once(&bed.engine, bed.portal).await;
        rows = store
            .list_records(bed.portal, ObjectType::Contacts, None, 100, &[])
            .await
            .unwrap();
        if rows.iter().all(|r| r.hubspot_id.is_some()) {
            break;
        }
        // Deferred items wait for their retry time.
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert!(
        rows.iter().all(|r| r.hubspot_id.is_some()),
        "every record linked after the retry"
    );
    assert_eq!(
        bed.remote_count(ObjectKind::Contact),
        30,
        "no second record for any of them"
    );
}

#[tokio::test]
async fn a_record_hubspot_rejects_is_dead_lettered_and_the_rest_of_its_batch_proceeds() {
    let bed = TestBed::start().await;
    for i in 0..10 {
        bed.app_insert(ObjectType::Contacts, json!({"first_name": format!("Ok{i}"), "email_addresses": [format!("ok{i}@example.com")]})).await;
    }
    // A custom property HubSpot does not know.
    bed.app_insert(
        ObjectType::Contacts,
        json!({"first_name": "Bad", "email_addresses": ["bad@example.com"], "custom_fields": {"no_such_property__c": "x"}}),
    )
    .await;
    bed.push_all().await;
    assert_eq!(bed.remote_count(ObjectKind::Contact), 10);
    let letters = bed
        .store()
        .list_dead_letters(bed.portal, None, 10)
        .await
        .unwrap();
    assert_eq!(letters.len(), 1);
    assert!(
        letters[0].letter.reason.contains("no_such_property__c"),
        "{}",
        letters[0].letter.reason
    );
    assert_eq!(letters[0].letter.category, "VALIDATION_ERROR");
    assert_eq!(
        bed.store().queue_depths(bed.portal).await.unwrap().outbox,
        0,
        "the queue moved on"
    );
}

#[tokio::test]
async fn a_row_the_mapping_cannot_translate_is_dead_lettered_without_rejecting_the_app_write() {
    let bed = TestBed::start().await;
    let bad = bed
        .app_insert(
            ObjectType::Contacts,
            json!({"first_name": "Weird", "email_addresses": ["not an email"]}),
        )
        .await;
    bed.app_insert(
        ObjectType::Contacts,
        json!({"first_name": "Fine", "email_addresses": ["fine@example.com"]}),
    )
    .await;
    bed.push_all().await;
    assert_eq!(bed.remote_count(ObjectKind::Contact), 1);
    let letters = bed
        .store()
        .list_dead_letters(bed.portal, None, 10)
        .await
        .unwrap();
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].letter.local_id, Some(bad));
    assert!(
        letters[0].letter.reason.contains("email"),
        "{}",
        letters[0].letter.reason
    );
    // The app's row itself is untouched.
    let row = bed
        .store()
        .get_record(bed.portal, ObjectType::Contacts, bad)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.fields.get("email_addresses"), &json!(["not an email"]));
}

#[tokio::test]
async fn two_local_contacts_with_one_email_make_one_hubspot_contact_and_one_dead_letter() {
    let bed = TestBed::start().await;
    let first = bed
        .app_insert(
            ObjectType::Contacts,
            json!({"first_name": "One", "email_addresses": ["same@example.com"]}),
        )
        .await;
    let second = bed
        .app_insert(
            ObjectType::Contacts,
            json!({"first_name": "Two", "email_addresses": ["same@example.com"]}),
        )
        .await;
    bed.push_all().await;
    assert_eq!(bed.remote_count(ObjectKind::Contact), 1);
    let rows = [first, second];
    let mut linked = 0;
    for id in rows {
        let row = bed
            .store()
            .get_record(bed.portal, ObjectType::Contacts, id)
            .await
            .unwrap()
            .unwrap();
        linked += usize::from(row.hubspot_id.is_some());
    }
    assert_eq!(linked, 1, "only one local row may hold the HubSpot contact");
    let letters = bed
        .store()
        .list_dead_letters(bed.portal, None, 10)
        .await
        .unwrap();
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].letter.category, "CONFLICT");
    assert!(
        letters[0].letter.reason.contains("already"),
        "{}",
        letters[0].letter.reason
    );
}
