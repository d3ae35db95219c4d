//! Fencing: a process that lost a portal's lease while it was paused (and does not know it yet)
//! has its writes refused, so the portal's new owner is the only one whose work counts — and
//! the HubSpot write the old owner made anyway leaves no duplicate, because creates are upserts.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::TestBed;
use hubsync_core::{ObjectType, PortalId};
use hubsync_emulator::ObjectKind;
use hubsync_engine::lease::Tenure;
use hubsync_engine::{Engine, EngineError, EngineSettings, outbound, reconcile};
use hubsync_store::StoreError;
use serde_json::json;

fn is_fenced(result: &Result<impl std::fmt::Debug, EngineError>) -> bool {
    matches!(result, Err(EngineError::Store(StoreError::Fenced { .. })))
}

#[tokio::test]
async fn writes_of_a_process_whose_lease_moved_on_are_refused() {
    let bed = TestBed::start().await;
    let portal = bed.portal;
    // Claims of the stale process come back quickly, so the new owner can finish its work.
    let settings = EngineSettings {
        outbound_lease: Duration::from_millis(300),
        ..(*bed.engine.settings).clone()
    };
    let engine = Engine {
        settings: Arc::new(settings),
        ..bed.engine.clone()
    };
    let store = Arc::clone(bed.store());
    let ttl = Duration::from_millis(200);

    let fence = store
        .try_acquire_lease(portal, "process-a", ttl)
        .await
        .expect("acquire")
        .expect("free lease");
    // Process a's workers believe in their tenure (its clock has not told them otherwise).
    let old = Tenure::new(fence, Duration::from_secs(3600));
    assert!(
        store
            .try_acquire_lease(portal, "process-b", ttl)
            .await
            .expect("acquire")
            .is_none(),
        "a held lease is not taken"
    );
    for ty in ObjectType::ALL {
        while !reconcile::import_step_fenced(&engine, portal, ty, Some(&old))
            .await
            .expect("owner imports")
            .done
        {}
    }

    // Process a pauses; its lease expires and process b takes the portal over.
    tokio::time::sleep(ttl + Duration::from_millis(100)).await;
    let fence = store
        .try_acquire_lease(portal, "process-b", ttl)
        .await
        .expect("acquire")
        .expect("expired lease");
    assert!(fence > old.fence(), "a new tenure has a higher fence");
    let new = Tenure::new(fence, Duration::from_secs(3600));

    // Process a wakes up and carries on as if it still owned the portal.
    bed.app_insert(
        ObjectType::Contacts,
        json!({"first_name": "Fenced", "email_addresses": ["fenced@scale.example"]}),
    )
    .await;
    let pushed = outbound::push_once_fenced(&engine, portal, Some(&old)).await;
    assert!(
        is_fenced(&pushed),
        "the stale owner's acknowledgement is refused: {pushed:?}"
    );
    reset_import(&engine, portal).await;
    let imported =
        reconcile::import_step_fenced(&engine, portal, ObjectType::Contacts, Some(&old)).await;
    assert!(
        is_fenced(&imported),
        "the stale owner's apply is refused: {imported:?}"
    );
    assert!(
        !store
            .renew_lease(portal, "process-a", old.fence(), ttl)
            .await
            .expect("renew"),
        "the stale owner cannot renew"
    );

    // The new owner redoes the push once the stale claim runs out: one record in HubSpot.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let step = outbound::push_once_fenced(&engine, portal, Some(&new))
        .await
        .expect("the owner pushes");
    assert_eq!(step.written, 1, "{step:?}");
    let record = store
        .list_records(portal, ObjectType::Contacts, None, 10, &[])
        .await
        .expect("list")
        .into_iter()
        .find(|r| r.fields.get("first_name") == &json!("Fenced"))
        .expect("local row");
    assert!(
        record.hubspot_id.is_some(),
        "the owner's acknowledgement links the row"
    );
    let remote = bed.emulator.admin().dump(portal.get()).expect("dump");
    let copies = remote["objects"]["contacts"]["live"]
        .as_array()
        .expect("contacts")
        .iter()
        .filter(|c| c["properties"]["email"] == json!("fenced@scale.example"))
        .count();
    assert_eq!(
        copies, 1,
        "the stale owner's write and the owner's retry are one record"
    );
    assert_eq!(bed.remote_count(ObjectKind::Contact), 1);
}

#[tokio::test]
async fn a_process_whose_tenure_ran_out_sends_nothing_to_hubspot() {
    let bed = TestBed::start().await;
    let portal = bed.portal;
    let store = Arc::clone(bed.store());
    let fence = store
        .try_acquire_lease(portal, "process-a", Duration::from_secs(60))
        .await
        .expect("acquire")
        .expect("free lease");
    for ty in ObjectType::ALL {
        while !reconcile::import_step(&bed.engine, portal, ty)
            .await
            .expect("import")
            .done
        {}
    }
    // The process stalled: its last renewal is older than its tenure.
    let stale = Tenure::new(fence, Duration::ZERO);
    bed.app_insert(
        ObjectType::Contacts,
        json!({"first_name": "Stalled", "email_addresses": ["stalled@scale.example"]}),
    )
    .await;
    let writes = bed.write_calls();
    let pushed = outbound::push_once_fenced(&bed.engine, portal, Some(&stale)).await;
    assert!(
        matches!(pushed, Err(EngineError::LeaseExpired(p)) if p == portal),
        "{pushed:?}"
    );
    assert_eq!(bed.write_calls(), writes, "nothing was sent to HubSpot");
    assert_eq!(bed.remote_count(ObjectKind::Contact), 0);

    // Renewed in time after all: the claim was handed back, and the push goes out.
    let renewed = Tenure::new(fence, Duration::from_secs(60));
    let step = outbound::push_once_fenced(&bed.engine, portal, Some(&renewed))
        .await
        .expect("push");
    assert_eq!(step.written, 1, "{step:?}");
    assert_eq!(bed.remote_count(ObjectKind::Contact), 1);
}

/// Forgets the import cursor, so that an import step has a page to apply.
async fn reset_import(engine: &Engine, portal: PortalId) {
    engine
        .store
        .set_cursor(portal, "import:contacts", "", None)
        .await
        .expect("cursor");
}
