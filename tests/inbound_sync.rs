//! Inbound: HubSpot changes reach the app's tables through signed webhooks, in order, once, and
//! our own writes never come back.

#![allow(clippy::unwrap_used)]

mod common;

use common::{PORTAL, TestBed};
use hubsync_core::{Changes, HubspotId, ObjectType};
use hubsync_emulator::{ApiChangeSource, DEFAULT_USER_ID, Faults, ObjectKind};
use hubsync_engine::counters;
use serde_json::json;

async fn bed() -> TestBed {
    let mut bed = TestBed::start().await;
    bed.serve().await;
    bed
}

/// A contact a person created in HubSpot, synced to the app: its HubSpot id and app row.
async fn synced_engineer(
    bed: &TestBed,
    email: &str,
    first_name: &str,
) -> (u64, hubsync_store::LocalRecord) {
    let id = bed
        .emulator
        .admin()
        .create(
            PORTAL,
            ObjectKind::Contact,
            [
                ("email", email),
                ("jobtitle", "Engineer"),
                ("firstname", first_name),
            ],
            DEFAULT_USER_ID,
        )
        .unwrap();
    bed.settle_inbound().await;
    let row = bed
        .store()
        .find_by_hubspot_id(bed.portal, ObjectType::Contacts, HubspotId(id))
        .await
        .unwrap()
        .unwrap();
    (id, row)
}

#[tokio::test]
async fn person_edit_in_hubspot_reaches_the_app_table() {
    let bed = bed().await;
    let admin = bed.emulator.admin();
    let id = admin
        .create(
            PORTAL,
            ObjectKind::Contact,
            [("email", "ada@example.com"), ("firstname", "Ada")],
            DEFAULT_USER_ID,
        )
        .unwrap();
    bed.settle_inbound().await;
    let row = bed
        .store()
        .find_by_hubspot_id(bed.portal, ObjectType::Contacts, HubspotId(id))
        .await
        .unwrap()
        .expect("created locally");
    assert_eq!(row.fields.get("first_name"), &json!("Ada"));

    admin
        .update(
            PORTAL,
            ObjectKind::Contact,
            id,
            [("lastname", "Lovelace"), ("jobtitle", "Analyst")],
            DEFAULT_USER_ID,
        )
        .unwrap();
    bed.settle_inbound().await;
    let row = bed
        .store()
        .get_record(bed.portal, ObjectType::Contacts, row.local_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.fields.get("last_name"), &json!("Lovelace"));
    assert_eq!(row.fields.get("title"), &json!("Analyst"));
    // Applying HubSpot's change queued nothing for HubSpot.
    assert_eq!(
        bed.store().queue_depths(bed.portal).await.unwrap().outbox,
        0
    );
}

#[tokio::test]
async fn echo_of_own_write_is_dropped_by_change_source() {
    let bed = bed().await;
    let local = bed
        .app_insert(
            ObjectType::Contacts,
            json!({"first_name": "Grace", "email_addresses": ["grace@example.com"]}),
        )
        .await;
    bed.push_all().await;
    let calls = bed.write_calls();
    bed.settle_inbound().await;
    assert!(bed.counter(counters::ECHO_CHANGE_SOURCE).await > 0);
    // No vampire: nothing was written back locally or queued for HubSpot again.
    assert_eq!(
        bed.store().queue_depths(bed.portal).await.unwrap().outbox,
        0
    );
    assert_eq!(bed.push_all().await, 0);
    assert_eq!(bed.write_calls(), calls);
    let row = bed
        .store()
        .get_record(bed.portal, ObjectType::Contacts, local)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.fields.get("first_name"), &json!("Grace"));
}

#[tokio::test]
async fn echo_of_own_write_is_dropped_by_origin_marker_when_the_change_source_is_anonymous() {
    let bed = bed().await;
    // HubSpot's unverified variant: API writes say `changeSource: API` with no sourceId.
    bed.emulator
        .admin()
        .update_settings(|s| s.api_change_source = ApiChangeSource::Api);
    let local = bed
        .app_insert(
            ObjectType::Companies,
            json!({"name": "Initech", "domain": "initech.example"}),
        )
        .await;
    bed.push_all().await;
    bed.settle_inbound().await;
    let changes: Changes = [("industry".to_owned(), json!("Software"))]
        .into_iter()
        .collect();
    bed.store()
        .update_record(bed.portal, ObjectType::Companies, local, &changes)
        .await
        .unwrap();
    bed.push_all().await;
    bed.settle_inbound().await;
    assert_eq!(bed.counter(counters::ECHO_CHANGE_SOURCE).await, 0);
    assert!(
        bed.counter(counters::ECHO_ORIGIN).await > 0,
        "the update's echo carried our origin marker"
    );
    assert_eq!(
        bed.store().queue_depths(bed.portal).await.unwrap().outbox,
        0
    );
}

#[tokio::test]
async fn redelivered_change_is_dropped_by_fingerprint() {
    let bed = bed().await;
    let admin = bed.emulator.admin();
    let id = admin
        .create(
            PORTAL,
            ObjectKind::Company,
            [("name", "Umbrella"), ("domain", "umbrella.example")],
            DEFAULT_USER_ID,
        )
        .unwrap();
    bed.settle_inbound().await;
    // Every event delivered twice: the second copy of each change equals the base.
    admin.set_faults(Faults {
        webhook_duplicate_pct: 100.0,
        ..Faults::default()
    });
    admin
        .update(
            PORTAL,
            ObjectKind::Company,
            id,
            [("industry", "Biotech")],
            DEFAULT_USER_ID,
        )
        .unwrap();
    bed.settle_inbound().await;
    let row = bed
        .store()
        .find_by_hubspot_id(bed.portal, ObjectType::Companies, HubspotId(id))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.fields.get("industry"), &json!("Biotech"));
    assert_eq!(
        bed.store().queue_depths(bed.portal).await.unwrap().outbox,
        0
    );
    let _ = bed.counter(counters::ECHO_FINGERPRINT).await;
}

#[tokio::test]
async fn late_event_never_overwrites_a_newer_value() {
    let bed = bed().await;
    let admin = bed.emulator.admin();
    let id = admin
        .create(
            PORTAL,
            ObjectKind::Contact,
            [("email", "late@example.com"), ("jobtitle", "v0")],
            DEFAULT_USER_ID,
        )
        .unwrap();
    bed.settle_inbound().await;
    admin.set_faults(Faults {
        webhook_reorder_pct: 50.0,
        webhook_duplicate_pct: 20.0,
        ..Faults::default()
    });
    for v in 1..=20 {
        admin
            .update(
                PORTAL,
                ObjectKind::Contact,
                id,
                [("jobtitle", format!("v{v}"))],
                DEFAULT_USER_ID,
            )
            .unwrap();
    }
    bed.settle_inbound().await;
    let row = bed
        .store()
        .find_by_hubspot_id(bed.portal, ObjectType::Contacts, HubspotId(id))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.fields.get("title"), &json!("v20"));
}

#[tokio::test]
async fn hubspot_delete_retires_the_local_row() {
    let bed = bed().await;
    let admin = bed.emulator.admin();
    let id = admin
        .create(
            PORTAL,
            ObjectKind::Deal,
            [
                ("dealname", "Gone"),
                ("dealstage", "appointmentscheduled"),
                ("pipeline", "default"),
            ],
            DEFAULT_USER_ID,
        )
        .unwrap();
    bed.settle_inbound().await;
    admin
        .archive(PORTAL, ObjectKind::Deal, id, DEFAULT_USER_ID)
        .unwrap();
    bed.settle_inbound().await;
    let row = bed
        .store()
        .find_by_hubspot_id(bed.portal, ObjectType::Deals, HubspotId(id))
        .await
        .unwrap()
        .unwrap();
    assert!(row.deleted);
}

#[tokio::test]
async fn hubspot_merge_repoints_the_survivor_and_old_ids_keep_resolving() {
    let bed = bed().await;
    let admin = bed.emulator.admin();
    let a = admin
        .create(
            PORTAL,
            ObjectKind::Contact,
            [("email", "a@merge.example"), ("firstname", "A")],
            DEFAULT_USER_ID,
        )
        .unwrap();
    let b = admin
        .create(
            PORTAL,
            ObjectKind::Contact,
            [("email", "b@merge.example"), ("firstname", "B")],
            DEFAULT_USER_ID,
        )
        .unwrap();
    bed.settle_inbound().await;
    let merged = admin
        .merge(PORTAL, ObjectKind::Contact, a, b, DEFAULT_USER_ID)
        .unwrap();
    bed.settle_inbound().await;
    let survivor = bed
        .store()
        .find_by_hubspot_id(bed.portal, ObjectType::Contacts, HubspotId(merged))
        .await
        .unwrap()
        .expect("survivor");
    assert!(!survivor.deleted);
    for old in [a, b] {
        let resolved = bed
            .store()
            .find_by_hubspot_id(bed.portal, ObjectType::Contacts, HubspotId(old))
            .await
            .unwrap()
            .expect("old id resolves");
        assert_eq!(resolved.local_id, survivor.local_id);
    }
    let live = [hubsync_store::Filter::new(
        "deleted_at",
        hubsync_store::FilterOp::IsNull,
        serde_json::Value::Null,
    )];
    assert_eq!(
        bed.store()
            .count_records(bed.portal, ObjectType::Contacts, &live)
            .await
            .unwrap(),
        1
    );
}

#[tokio::test]
async fn local_edit_not_yet_pushed_survives_an_older_remote_change() {
    let bed = bed().await;
    let admin = bed.emulator.admin();
    let (id, row) = synced_engineer(&bed, "c@example.com", "C").await;
    // HubSpot changes one field, the app another, before either side syncs.
    admin
        .update(
            PORTAL,
            ObjectKind::Contact,
            id,
            [("firstname", "Cee")],
            DEFAULT_USER_ID,
        )
        .unwrap();
    let changes: Changes = [("title".to_owned(), json!("Staff Engineer"))]
        .into_iter()
        .collect();
    bed.store()
        .update_record(bed.portal, ObjectType::Contacts, row.local_id, &changes)
        .await
        .unwrap();
    bed.settle_inbound().await;
    bed.push_all().await;
    let local = bed
        .store()
        .get_record(bed.portal, ObjectType::Contacts, row.local_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(local.fields.get("first_name"), &json!("Cee"));
    assert_eq!(local.fields.get("title"), &json!("Staff Engineer"));
    let remote = bed.remote(ObjectKind::Contact, id).unwrap();
    assert_eq!(remote["properties"]["jobtitle"], "Staff Engineer");
    assert_eq!(remote["properties"]["firstname"], "Cee");
}

#[tokio::test]
async fn webhook_storm_of_10000_events_costs_at_most_100_batch_reads() {
    let bed = bed().await;
    let admin = bed.emulator.admin();
    // 2,500 creations by people in HubSpot, each with several property events: > 10,000 events.
    for i in 0..2500 {
        admin
            .create(
                PORTAL,
                ObjectKind::Contact,
                [
                    ("email", format!("storm{i}@example.com")),
                    ("firstname", format!("S{i}")),
                    ("lastname", "Storm".to_owned()),
                    ("jobtitle", "Rain".to_owned()),
                ],
                DEFAULT_USER_ID,
            )
            .unwrap();
    }
    let before = admin
        .stats()
        .portal(PORTAL)
        .requests_by_operation
        .get("contacts.batch_read")
        .copied()
        .unwrap_or(0);
    bed.settle_inbound().await;
    let reads = admin
        .stats()
        .portal(PORTAL)
        .requests_by_operation
        .get("contacts.batch_read")
        .copied()
        .unwrap_or(0)
        - before;
    let events = admin.stats().portal(PORTAL).webhook_events_delivered;
    assert!(events >= 10_000, "{events} events");
    assert!(reads <= 100, "{reads} batch reads for {events} events");
    let live = [hubsync_store::Filter::new(
        "deleted_at",
        hubsync_store::FilterOp::IsNull,
        serde_json::Value::Null,
    )];
    assert_eq!(
        bed.store()
            .count_records(bed.portal, ObjectType::Contacts, &live)
            .await
            .unwrap(),
        2500
    );
}

#[tokio::test]
async fn remote_change_still_in_the_inbox_survives_a_push_of_another_field() {
    let bed = bed().await;
    let admin = bed.emulator.admin();
    let (id, row) = synced_engineer(&bed, "d@example.com", "D").await;
    // A person renames the contact in HubSpot; the webhook is stored but not applied yet.
    admin
        .update(
            PORTAL,
            ObjectKind::Contact,
            id,
            [("firstname", "Dee")],
            DEFAULT_USER_ID,
        )
        .unwrap();
    assert!(
        admin
            .wait_webhooks_idle(std::time::Duration::from_secs(20))
            .await
    );
    // Meanwhile the app changes the title, and the push goes out first (a later HubSpot time).
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let changes: Changes = [("title".to_owned(), json!("Staff Engineer"))]
        .into_iter()
        .collect();
    bed.store()
        .update_record(bed.portal, ObjectType::Contacts, row.local_id, &changes)
        .await
        .unwrap();
    bed.push_all().await;
    // The older event is applied after the push: the push wrote only the title, so the event
    // still decides the first name.
    bed.apply_all().await;
    let local = bed
        .store()
        .get_record(bed.portal, ObjectType::Contacts, row.local_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(local.fields.get("first_name"), &json!("Dee"));
    assert_eq!(local.fields.get("title"), &json!("Staff Engineer"));
    let remote = bed.remote(ObjectKind::Contact, id).unwrap();
    assert_eq!(remote["properties"]["firstname"], "Dee");
    assert_eq!(remote["properties"]["jobtitle"], "Staff Engineer");
}
