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

/// Every seeded contact exactly once locally, each linked to its own HubSpot id.
async fn assert_imported_once(bed: &TestBed, n: usize) {
    let remote: std::collections::BTreeSet<u64> =
        common::twoway::remote_contacts(&bed.emulator.admin())
            .into_iter()
            .map(|(_, id, _)| id)
            .collect();
    assert_eq!(remote.len(), n);
    let mut local = std::collections::BTreeMap::new();
    let mut after = None;
    loop {
        let rows = bed
            .store()
            .list_records(bed.portal, ObjectType::Contacts, after, 500, &[])
            .await
            .unwrap();
        let Some(last) = rows.last() else { break };
        after = Some(last.local_id);
        for row in rows {
            let id = row.hubspot_id.expect("imported rows are linked").0;
            *local.entry(id).or_insert(0) += 1;
        }
    }
    assert_eq!(local.len(), n, "every HubSpot contact has a row");
    assert!(
        local.values().all(|&c| c == 1),
        "a contact was imported twice"
    );
    assert!(local.keys().all(|id| remote.contains(id)));
}

#[tokio::test]
async fn two_lane_import_meets_in_the_middle_and_imports_every_record_once() {
    let bed = TestBed::start().await;
    bed.emulator
        .admin()
        .seed(
            PORTAL,
            &SeedSpec {
                contacts: 1_450,
                duplicate_share: 0.0,
                ..SeedSpec::default()
            },
        )
        .unwrap();
    assert!(bed.engine.settings.import_search_lane, "on by default");
    let report =
        reconcile::import_type(&bed.engine, bed.portal, ObjectType::Contacts, None, |_| {
            std::ops::ControlFlow::Continue(())
        })
        .await
        .unwrap()
        .expect("ran to the end");
    assert_imported_once(&bed, 1_450).await;
    assert!(
        report.search_calls > 0 && report.list_calls > 0,
        "{report:?}"
    );
    // The walks overlap by at most the pages in flight when they met.
    assert!(
        report.listed + report.searched <= 1_450 + 300,
        "the walks did not stop where they met: {report:?}"
    );
    // Fewer calls on the general lane than a list-only import (15 pages).
    assert!(report.list_calls < 15, "{report:?}");
    assert!(
        reconcile::import_done(&bed.engine, bed.portal, ObjectType::Contacts)
            .await
            .unwrap()
    );
}

#[tokio::test]
async fn interrupted_two_lane_import_resumes_without_loss_or_duplicates() {
    let bed = TestBed::start().await;
    bed.emulator
        .admin()
        .seed(
            PORTAL,
            &SeedSpec {
                contacts: 1_230,
                duplicate_share: 0.0,
                ..SeedSpec::default()
            },
        )
        .unwrap();
    // Stopped after its third page…
    let pages = std::sync::atomic::AtomicUsize::new(0);
    let first = reconcile::import_type(&bed.engine, bed.portal, ObjectType::Contacts, None, |_| {
        if pages.fetch_add(1, std::sync::atomic::Ordering::SeqCst) >= 2 {
            std::ops::ControlFlow::Break(())
        } else {
            std::ops::ControlFlow::Continue(())
        }
    })
    .await
    .unwrap();
    assert!(first.is_none(), "stopped before the end");
    assert!(
        !reconcile::import_done(&bed.engine, bed.portal, ObjectType::Contacts)
            .await
            .unwrap()
    );
    // …a person creates a contact meanwhile (it has the highest id, above the search walk)…
    bed.emulator
        .admin()
        .create(
            PORTAL,
            ObjectKind::Contact,
            [("email", "late@example.com")],
            DEFAULT_USER_ID,
        )
        .unwrap();
    // …and the next run finishes from the committed cursors.
    reconcile::import_type(&bed.engine, bed.portal, ObjectType::Contacts, None, |_| {
        std::ops::ControlFlow::Continue(())
    })
    .await
    .unwrap()
    .expect("ran to the end");
    // The late contact is above the search walk's start: the first incremental pass (whose
    // window opens a lookback before the import began) brings it in.
    reconcile::incremental_pass(&bed.engine, bed.portal, ObjectType::Contacts)
        .await
        .unwrap();
    assert_imported_once(&bed, 1_231).await;
}
