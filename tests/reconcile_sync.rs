//! Reconciliation: the initial import links instead of duplicating, and incremental passes
//! repair what the event stream missed.

#![allow(clippy::unwrap_used)]

mod common;

use common::{PORTAL, TestBed};
use hubsync_core::{Changes, ObjectType};
use hubsync_emulator::{DEFAULT_USER_ID, ObjectKind, SeedSpec};
use hubsync_engine::reconcile;
use hubsync_store::{Filter, FilterOp};
use serde_json::json;

async fn import_all(bed: &TestBed) {
    for ty in ObjectType::ALL {
        for _ in 0..10_000 {
            if reconcile::import_step(&bed.engine, bed.portal, ty)
                .await
                .unwrap()
                .done
            {
                break;
            }
        }
    }
}

#[tokio::test]
async fn initial_import_streams_every_record_once_and_links_existing_local_ones() {
    let bed = TestBed::start().await;
    let admin = bed.emulator.admin();
    admin
        .seed(
            PORTAL,
            &SeedSpec {
                contacts: 340,
                companies: 120,
                deals: 30,
                duplicate_share: 0.0,
                ..SeedSpec::default()
            },
        )
        .unwrap();
    // The app already holds one of HubSpot's contacts (same email) and one of its own.
    let dump = admin.dump(PORTAL).unwrap();
    let existing_email = dump["objects"]["contacts"]["live"]
        .as_array()
        .and_then(|a| a.first())
        .and_then(|c| c["properties"]["email"].as_str())
        .map(str::to_owned)
        .expect("seeded contact email");
    let linked = bed
        .app_insert(
            ObjectType::Contacts,
            json!({"first_name": "Local", "email_addresses": [existing_email.clone()]}),
        )
        .await;
    bed.app_insert(
        ObjectType::Contacts,
        json!({"first_name": "OnlyLocal", "email_addresses": ["only.local@example.com"]}),
    )
    .await;

    import_all(&bed).await;
    let live = [Filter::new(
        "deleted_at",
        FilterOp::IsNull,
        serde_json::Value::Null,
    )];
    let contacts = bed
        .store()
        .count_records(bed.portal, ObjectType::Contacts, &live)
        .await
        .unwrap();
    assert_eq!(
        contacts, 341,
        "340 imported (one linked, not duplicated) + one local-only"
    );
    assert_eq!(
        bed.store()
            .count_records(bed.portal, ObjectType::Companies, &live)
            .await
            .unwrap(),
        120
    );
    assert_eq!(
        bed.store()
            .count_records(bed.portal, ObjectType::Deals, &live)
            .await
            .unwrap(),
        30
    );
    let row = bed
        .store()
        .get_record(bed.portal, ObjectType::Contacts, linked)
        .await
        .unwrap()
        .unwrap();
    assert!(
        row.hubspot_id.is_some(),
        "the existing local contact was linked by email"
    );

    // The local-only contact goes out; the linked one needs no create.
    bed.push_all().await;
    assert_eq!(bed.remote_count(ObjectKind::Contact), 341);
    // A second import is a no-op: the cursor says done.
    assert!(
        reconcile::import_step(&bed.engine, bed.portal, ObjectType::Contacts)
            .await
            .unwrap()
            .done
    );
}

#[tokio::test]
async fn incremental_pass_repairs_changes_whose_webhooks_never_arrived() {
    let bed = TestBed::start().await;
    let admin = bed.emulator.admin();
    admin
        .seed(
            PORTAL,
            &SeedSpec {
                contacts: 50,
                duplicate_share: 0.0,
                ..SeedSpec::default()
            },
        )
        .unwrap();
    import_all(&bed).await;
    // Make every record searchable now, then pass once to settle the cursor.
    admin.flush_search(PORTAL).unwrap();
    reconcile::incremental_pass(&bed.engine, bed.portal, ObjectType::Contacts)
        .await
        .unwrap();

    // A person edits a record in HubSpot; the webhook is lost (no target configured).
    let id = admin.dump(PORTAL).unwrap()["objects"]["contacts"]["live"][0]["id"]
        .as_str()
        .unwrap()
        .parse::<u64>()
        .unwrap();
    admin
        .update(
            PORTAL,
            ObjectKind::Contact,
            id,
            [("jobtitle", "Chief Drift Officer")],
            DEFAULT_USER_ID,
        )
        .unwrap();
    admin.flush_search(PORTAL).unwrap();

    let report = reconcile::incremental_pass(&bed.engine, bed.portal, ObjectType::Contacts)
        .await
        .unwrap();
    assert!(report.repaired_local >= 1, "{report:?}");
    let row = bed
        .store()
        .find_by_hubspot_id(
            bed.portal,
            ObjectType::Contacts,
            hubsync_core::HubspotId(id),
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.fields.get("title"), &json!("Chief Drift Officer"));

    // Nothing changed since: the next pass costs one search call and repairs nothing.
    let report = reconcile::incremental_pass(&bed.engine, bed.portal, ObjectType::Contacts)
        .await
        .unwrap();
    assert_eq!(report.searches, 1);
    assert_eq!(report.repaired_local, 0);
}

#[tokio::test]
async fn full_pass_finds_remote_deletes_and_unsynced_local_edits() {
    let bed = TestBed::start().await;
    let admin = bed.emulator.admin();
    admin
        .seed(
            PORTAL,
            &SeedSpec {
                companies: 20,
                duplicate_share: 0.0,
                ..SeedSpec::default()
            },
        )
        .unwrap();
    import_all(&bed).await;
    let dump = admin.dump(PORTAL).unwrap();
    let gone = dump["objects"]["companies"]["live"][0]["id"]
        .as_str()
        .unwrap()
        .parse::<u64>()
        .unwrap();
    admin
        .archive(PORTAL, ObjectKind::Company, gone, DEFAULT_USER_ID)
        .unwrap();

    // A dry run reports and changes nothing.
    let dry = reconcile::full_pass(&bed.engine, bed.portal, ObjectType::Companies, true)
        .await
        .unwrap();
    assert_eq!(dry.missing_remote, 1);
    let row = bed
        .store()
        .find_by_hubspot_id(
            bed.portal,
            ObjectType::Companies,
            hubsync_core::HubspotId(gone),
        )
        .await
        .unwrap()
        .unwrap();
    assert!(!row.deleted);

    let report = reconcile::full_pass(&bed.engine, bed.portal, ObjectType::Companies, false)
        .await
        .unwrap();
    assert_eq!(report.missing_remote, 1);
    let row = bed
        .store()
        .find_by_hubspot_id(
            bed.portal,
            ObjectType::Companies,
            hubsync_core::HubspotId(gone),
        )
        .await
        .unwrap()
        .unwrap();
    assert!(
        row.deleted,
        "the company archived in HubSpot is retired locally"
    );
    assert_eq!(report.equal, 19);
    let _: Changes = Changes::new();
}

#[tokio::test]
async fn incremental_walk_passes_the_10000_result_cap_without_skipping_or_looping() {
    let bed = TestBed::start().await;
    let admin = bed.emulator.admin();
    admin
        .seed(
            PORTAL,
            &SeedSpec {
                contacts: 12_000,
                duplicate_share: 0.0,
                ..SeedSpec::default()
            },
        )
        .unwrap();
    admin.flush_search(PORTAL).unwrap();
    // Seeding writes many records within one millisecond: the window's boundary timestamps are
    // shared by many records, which an offset- or timestamp-paged walk would skip or repeat.
    let dump = admin.dump(PORTAL).unwrap();
    let stamps: std::collections::BTreeSet<&str> = dump["objects"]["contacts"]["live"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["properties"]["lastmodifieddate"].as_str())
        .collect();
    assert!(stamps.len() < 12_000, "records share timestamps");

    let report = reconcile::incremental_pass(&bed.engine, bed.portal, ObjectType::Contacts)
        .await
        .unwrap();
    assert_eq!(report.seen, 12_000, "{report:?}");
    assert_eq!(
        report.searches, 61,
        "60 full pages of 200 and one empty one"
    );
    let live = [Filter::new(
        "deleted_at",
        FilterOp::IsNull,
        serde_json::Value::Null,
    )];
    assert_eq!(
        bed.store()
            .count_records(bed.portal, ObjectType::Contacts, &live)
            .await
            .unwrap(),
        12_000
    );
}
