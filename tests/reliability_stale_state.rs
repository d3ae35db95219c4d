//! Guard for one race the fault soak can hit: a HubSpot state read *before* hubsync's own write
//! was acknowledged must not be applied *after* it.
//!
//! The reconciler (search page → plan → apply) and the inbound worker (batch read → plan →
//! apply) both read HubSpot, then plan against the local row and the stored base. When the
//! outbound worker pushes an app edit and records the new base in between (a slow read — a 5xx
//! retried with backoff, a 429, latency — widens that window to seconds), the stale state
//! differs from the new base; taking it for a change made in HubSpot would write the old value
//! over the app's edit while HubSpot keeps the new one.
//!
//! The test makes that interleaving deterministic: it reads the record, lets the app edit and
//! push, then hands the earlier read to `apply::plan` exactly as the reconciler would.

mod common;

use common::{PORTAL, TestBed};
use hubsync_core::{Changes, HubspotId, ObjectType};
use hubsync_emulator::{DEFAULT_USER_ID, ObjectKind};
use hubsync_engine::apply::{self, RemoteState, Source};
use hubsync_engine::converge;
use serde_json::json;

#[tokio::test]
async fn a_state_read_before_our_acknowledged_write_does_not_undo_the_apps_edit() {
    let mut bed = TestBed::start().await;
    bed.serve().await;
    let admin = bed.emulator.admin();
    let id = admin
        .create(
            PORTAL,
            ObjectKind::Contact,
            [
                ("email", "stale@example.com"),
                ("firstname", "Stale"),
                ("lastname", "Before"),
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
        .expect("imported");

    // 1. The reconciler (or the inbound worker) reads the record: lastname = Before.
    let before = admin
        .get(PORTAL, ObjectKind::Contact, id)
        .unwrap()
        .expect("record");
    let fields = bed
        .engine
        .mappings
        .to_unified(
            ObjectType::Contacts,
            json!({"id": id.to_string(), "properties": before["properties"]}),
        )
        .await
        .unwrap();
    let updated_at = before["properties"]["lastmodifieddate"]
        .as_str()
        .and_then(|s| s.parse::<i64>().ok())
        .unwrap_or_else(|| {
            time::OffsetDateTime::parse(
                before["updatedAt"].as_str().unwrap(),
                &time::format_description::well_known::Rfc3339,
            )
            .unwrap()
            .unix_timestamp_nanos() as i64
                / 1_000_000
        });
    let stale = RemoteState {
        object_type: ObjectType::Contacts,
        hubspot_id: HubspotId(id),
        fields,
        updated_at,
        field_ts: Default::default(),
        scope: None,
        hubsync_id: None,
    };

    // 2. Meanwhile the app edits the last name and the outbound worker pushes it; HubSpot
    //    acknowledges and the new base is recorded.
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let changes: Changes = [("last_name".to_owned(), json!("After"))]
        .into_iter()
        .collect();
    bed.store()
        .update_record(bed.portal, ObjectType::Contacts, row.local_id, &changes)
        .await
        .unwrap();
    bed.push_all().await;
    bed.settle_inbound().await;
    assert_eq!(
        bed.remote(ObjectKind::Contact, id).unwrap()["properties"]["lastname"],
        "After"
    );

    // 3. The earlier read is planned and applied now, as a reconcile page would be.
    let (ops, _) = apply::plan(&bed.engine, bed.portal, vec![stale], Source::Reconcile)
        .await
        .unwrap();
    bed.store()
        .apply_inbound(bed.portal, ops, &[], None)
        .await
        .unwrap();

    let local = bed
        .store()
        .get_record(bed.portal, ObjectType::Contacts, row.local_id)
        .await
        .unwrap()
        .unwrap();
    let convergence = converge::check(&bed.engine, bed.portal).await.unwrap();
    assert_eq!(
        local.fields.get("last_name"),
        &json!("After"),
        "a state older than the acknowledged write overwrote the app's edit; {}",
        common::describe_convergence(&convergence)
    );
    assert!(
        convergence.is_identical(),
        "{}",
        common::describe_convergence(&convergence)
    );
}
