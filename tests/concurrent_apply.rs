//! Concurrent workers on one record: the inbound worker, the reconciler and the app all write
//! the same rows, and a state read from HubSpot can reach the store after a newer one. No
//! interleaving may put an older value back or drop an edit made between a plan and its commit.

#![allow(clippy::unwrap_used)]

mod common;

use common::{PORTAL, TestBed};
use hubsync_core::{Changes, FieldMap, HubspotId, LocalId, ObjectType};
use hubsync_emulator::{DEFAULT_USER_ID, ObjectKind};
use hubsync_engine::apply::{self, RemoteState, Source};
use serde_json::json;

/// A contact created in HubSpot and imported: (HubSpot id, local id, its synced fields).
async fn synced_contact(bed: &TestBed) -> (HubspotId, LocalId, FieldMap) {
    let id = bed
        .emulator
        .admin()
        .create(
            PORTAL,
            ObjectKind::Contact,
            [
                ("email", "grace@example.com"),
                ("firstname", "Grace"),
                ("jobtitle", "A"),
            ],
            DEFAULT_USER_ID,
        )
        .unwrap();
    while !hubsync_engine::reconcile::import_step(&bed.engine, bed.portal, ObjectType::Contacts)
        .await
        .unwrap()
        .done
    {}
    let row = bed
        .store()
        .find_by_hubspot_id(bed.portal, ObjectType::Contacts, HubspotId(id))
        .await
        .unwrap()
        .expect("imported");
    let sync = bed
        .store()
        .get_sync_state(bed.portal, ObjectType::Contacts, row.local_id)
        .await
        .unwrap()
        .expect("sync state");
    (HubspotId(id), row.local_id, sync.base.expect("base"))
}

/// HubSpot's state as a read at `updated_at` would report it: `base` with `title`.
fn read_state(id: HubspotId, base: &FieldMap, title: &str, updated_at: i64) -> RemoteState {
    let mut fields = base.clone();
    fields.set("title".to_owned(), json!(title));
    RemoteState {
        object_type: ObjectType::Contacts,
        hubspot_id: id,
        fields,
        updated_at,
        field_ts: Default::default(),
        scope: None,
        hubsync_id: None,
    }
}

async fn local_title(bed: &TestBed, local_id: LocalId) -> serde_json::Value {
    bed.store()
        .get_record(bed.portal, ObjectType::Contacts, local_id)
        .await
        .unwrap()
        .unwrap()
        .fields
        .get("title")
        .clone()
}

#[tokio::test]
async fn late_read_of_an_older_state_does_not_restore_an_old_value() {
    let bed = TestBed::start().await;
    let (id, local_id, base) = synced_contact(&bed).await;
    let synced_at = bed
        .store()
        .get_sync_state(bed.portal, ObjectType::Contacts, local_id)
        .await
        .unwrap()
        .unwrap()
        .remote_updated_at
        .unwrap();
    // HubSpot's title went A → X → B. Two reads raced: the one that saw B commits first, the
    // one that saw X arrives later (an import page, a reconcile page).
    let newer = read_state(id, &base, "B", synced_at + 2_000);
    let older = read_state(id, &base, "X", synced_at + 1_000);
    apply::plan_and_apply(
        &bed.engine,
        bed.portal,
        vec![newer],
        Source::Reconcile,
        |_| Vec::new(),
        None,
    )
    .await
    .unwrap();
    assert_eq!(local_title(&bed, local_id).await, json!("B"));
    apply::plan_and_apply(
        &bed.engine,
        bed.portal,
        vec![older],
        Source::Reconcile,
        |_| Vec::new(),
        None,
    )
    .await
    .unwrap();
    assert_eq!(
        local_title(&bed, local_id).await,
        json!("B"),
        "the older read put its value back"
    );
    let sync = bed
        .store()
        .get_sync_state(bed.portal, ObjectType::Contacts, local_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(sync.base.unwrap().get("title"), &json!("B"));
    assert_eq!(
        sync.remote_updated_at,
        Some(synced_at + 2_000),
        "what hubsync has seen of HubSpot never moves back"
    );
}

#[tokio::test]
async fn app_edit_between_a_plan_and_its_commit_is_kept() {
    let bed = TestBed::start().await;
    let (id, local_id, base) = synced_contact(&bed).await;
    let state = read_state(id, &base, "B", hubsync_store::now_ms());
    let (ops, _) = apply::plan(&bed.engine, bed.portal, vec![state.clone()], Source::Events)
        .await
        .unwrap();
    // The app edits the same record after the plan read it.
    let edit: Changes = [("title".to_owned(), json!("app title"))]
        .into_iter()
        .collect();
    bed.store()
        .update_record(bed.portal, ObjectType::Contacts, local_id, &edit)
        .await
        .unwrap()
        .unwrap();
    let refused = bed
        .store()
        .apply_inbound(bed.portal, ops, &[], None)
        .await
        .unwrap_err();
    assert!(refused.is_stale(), "a stale plan was applied: {refused}");
    assert_eq!(local_title(&bed, local_id).await, json!("app title"));

    // Planned again from the current state, the two-sided change is settled by the policy and
    // recorded, never silently overwritten.
    let stats = apply::plan_and_apply(
        &bed.engine,
        bed.portal,
        vec![state],
        Source::Events,
        |_| Vec::new(),
        None,
    )
    .await
    .unwrap();
    assert_eq!(stats.conflicts, 1);
    let conflicts = bed
        .store()
        .list_conflicts(bed.portal, None, 10)
        .await
        .unwrap();
    assert_eq!(conflicts.len(), 1);
}

#[tokio::test]
async fn two_workers_creating_one_hubspot_record_make_one_row() {
    let bed = TestBed::start().await;
    let id = bed
        .emulator
        .admin()
        .create(
            PORTAL,
            ObjectKind::Contact,
            [("email", "ada@example.com"), ("jobtitle", "A")],
            DEFAULT_USER_ID,
        )
        .unwrap();
    let mut fields = FieldMap::new();
    fields.set("email_addresses".to_owned(), json!(["ada@example.com"]));
    let now = hubsync_store::now_ms();
    let first = read_state(HubspotId(id), &fields, "A", now);
    let second = read_state(HubspotId(id), &fields, "B", now + 1_000);
    // Both plans see no local row (the inbound worker and the importer, at once).
    let (ops_first, _) = apply::plan(&bed.engine, bed.portal, vec![first], Source::Reconcile)
        .await
        .unwrap();
    let (ops_second, _) = apply::plan(
        &bed.engine,
        bed.portal,
        vec![second.clone()],
        Source::Events,
    )
    .await
    .unwrap();
    bed.store()
        .apply_inbound(bed.portal, ops_second, &[], None)
        .await
        .unwrap();
    let refused = bed
        .store()
        .apply_inbound(bed.portal, ops_first, &[], None)
        .await
        .unwrap_err();
    assert!(refused.is_stale(), "a second create was applied: {refused}");
    let rows = bed
        .store()
        .count_records(bed.portal, ObjectType::Contacts, &[])
        .await
        .unwrap();
    assert_eq!(rows, 1);
    let row = bed
        .store()
        .find_by_hubspot_id(bed.portal, ObjectType::Contacts, HubspotId(id))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        row.fields.get("title"),
        &json!("B"),
        "the newer state stands"
    );
}
