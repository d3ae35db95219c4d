//! Associations: the app's `company_id` / `contact_ids` and HubSpot's v4 associations stay in
//! step both ways — app links become associations, HubSpot association changes reach the app,
//! our own writes do not come back, the import brings links in, and a reconcile pass repairs
//! drift that no webhook reported.

#![allow(clippy::unwrap_used)]

mod common;

use common::{PORTAL, TestBed};
use hubsync_core::{Changes, HubspotId, LocalId, ObjectType};
use hubsync_emulator::{ApiChangeSource, DEFAULT_USER_ID, ObjectKind};
use hubsync_engine::{associations, counters, reconcile};
use serde_json::{Value, json};

/// HubSpot's associations of a record to a type: `(to id, type ids)`, by id.
async fn remote_links(
    bed: &TestBed,
    from: ObjectType,
    to: ObjectType,
    id: HubspotId,
) -> Vec<(u64, Vec<u32>)> {
    let api = bed.engine.api(bed.portal).unwrap();
    let read = api.batch_read_associations(from, to, &[id]).await.unwrap();
    let mut out: Vec<(u64, Vec<u32>)> = read
        .results
        .into_iter()
        .flat_map(|r| r.to)
        .map(|t| {
            let mut types: Vec<u32> = t.association_types.iter().map(|a| a.type_id).collect();
            types.sort_unstable();
            (t.to_object_id.0, types)
        })
        .collect();
    out.sort();
    out
}

fn remote_ids(links: &[(u64, Vec<u32>)]) -> Vec<u64> {
    links.iter().map(|(id, _)| *id).collect()
}

async fn hubspot_id(bed: &TestBed, ty: ObjectType, id: LocalId) -> HubspotId {
    let dl = bed
        .store()
        .list_dead_letters(bed.portal, None, 10)
        .await
        .unwrap();
    assert!(dl.is_empty(), "{dl:?}");
    bed.store()
        .get_record(bed.portal, ty, id)
        .await
        .unwrap()
        .unwrap()
        .hubspot_id
        .expect("pushed to HubSpot")
}

async fn local_field(bed: &TestBed, ty: ObjectType, id: LocalId, field: &str) -> Value {
    bed.store()
        .get_record(bed.portal, ty, id)
        .await
        .unwrap()
        .unwrap()
        .fields
        .get(field)
        .clone()
}

async fn local_by_hubspot(bed: &TestBed, ty: ObjectType, id: u64) -> LocalId {
    bed.store()
        .find_by_hubspot_id(bed.portal, ty, HubspotId(id))
        .await
        .unwrap()
        .expect("record is local")
        .local_id
}

async fn app_update(bed: &TestBed, ty: ObjectType, id: LocalId, field: &str, value: Value) {
    let changes: Changes = [(field.to_owned(), value)].into_iter().collect();
    bed.store()
        .update_record(bed.portal, ty, id, &changes)
        .await
        .unwrap()
        .unwrap();
}

/// Calls of one emulator operation (`associations.batch_create`, …).
fn calls(bed: &TestBed, operation: &str) -> u64 {
    bed.emulator
        .admin()
        .stats()
        .portal(PORTAL)
        .requests_by_operation
        .iter()
        .filter(|(op, _)| op.as_str() == operation)
        .map(|(_, n)| *n)
        .sum()
}

async fn outbox_depth(bed: &TestBed) -> u64 {
    bed.store().queue_depths(bed.portal).await.unwrap().outbox
}

#[tokio::test]
async fn app_company_link_becomes_hubspot_association() {
    let bed = TestBed::start().await;
    let acme = bed
        .app_insert(
            ObjectType::Companies,
            json!({"name": "Acme", "domain": "acme.example"}),
        )
        .await;
    let globex = bed
        .app_insert(
            ObjectType::Companies,
            json!({"name": "Globex", "domain": "globex.example"}),
        )
        .await;
    // Created in the same step as the company it links to: the link resolves in-step.
    let ada = bed
        .app_insert(
            ObjectType::Contacts,
            json!({"email_addresses": ["ada@acme.example"], "first_name": "Ada", "company_id": acme.get()}),
        )
        .await;
    let bob = bed
        .app_insert(
            ObjectType::Contacts,
            json!({"email_addresses": ["bob@acme.example"], "first_name": "Bob"}),
        )
        .await;
    let deal = bed
        .app_insert(
            ObjectType::Deals,
            json!({"name": "Big deal", "stage": "appointmentscheduled", "pipeline": "default", "company_id": acme.get(), "contact_ids": [ada.get(), bob.get()]}),
        )
        .await;
    bed.push_all().await;

    let acme_h = hubspot_id(&bed, ObjectType::Companies, acme).await;
    let globex_h = hubspot_id(&bed, ObjectType::Companies, globex).await;
    let ada_h = hubspot_id(&bed, ObjectType::Contacts, ada).await;
    let bob_h = hubspot_id(&bed, ObjectType::Contacts, bob).await;
    let deal_h = hubspot_id(&bed, ObjectType::Deals, deal).await;
    // The contact's company is its primary company (type 1, with the unlabeled 279).
    assert_eq!(
        remote_links(&bed, ObjectType::Contacts, ObjectType::Companies, ada_h).await,
        vec![(acme_h.0, vec![1, 279])]
    );
    let deal_company = remote_links(&bed, ObjectType::Deals, ObjectType::Companies, deal_h).await;
    assert_eq!(remote_ids(&deal_company), vec![acme_h.0]);
    assert!(deal_company[0].1.contains(&341));
    assert_eq!(
        remote_ids(&remote_links(&bed, ObjectType::Deals, ObjectType::Contacts, deal_h).await),
        vec![ada_h.0.min(bob_h.0), ada_h.0.max(bob_h.0)]
    );
    // One batch create per link kind, whatever the number of records.
    assert_eq!(calls(&bed, "associations.batch_create"), 3);

    // Changing the company replaces the association; removing a deal contact archives it.
    app_update(
        &bed,
        ObjectType::Contacts,
        ada,
        "company_id",
        json!(globex.get()),
    )
    .await;
    app_update(
        &bed,
        ObjectType::Deals,
        deal,
        "contact_ids",
        json!([bob.get()]),
    )
    .await;
    bed.push_all().await;
    assert_eq!(
        remote_ids(&remote_links(&bed, ObjectType::Contacts, ObjectType::Companies, ada_h).await),
        vec![globex_h.0]
    );
    assert_eq!(
        remote_ids(&remote_links(&bed, ObjectType::Deals, ObjectType::Contacts, deal_h).await),
        vec![bob_h.0]
    );

    // Clearing the link removes the association.
    app_update(&bed, ObjectType::Contacts, ada, "company_id", Value::Null).await;
    bed.push_all().await;
    assert!(
        remote_links(&bed, ObjectType::Contacts, ObjectType::Companies, ada_h)
            .await
            .is_empty()
    );
    // Nothing dead-lettered, nothing left queued.
    assert_eq!(outbox_depth(&bed).await, 0);
    assert_eq!(
        bed.store()
            .queue_depths(bed.portal)
            .await
            .unwrap()
            .dead_letters,
        0
    );
}

#[tokio::test]
async fn app_link_to_a_record_without_hubspot_id_waits_instead_of_dead_lettering() {
    let bed = TestBed::start().await;
    let acme = bed
        .app_insert(
            ObjectType::Companies,
            json!({"name": "Acme", "domain": "acme.example"}),
        )
        .await;
    let contact = bed
        .app_insert(
            ObjectType::Contacts,
            json!({"email_addresses": ["eve@acme.example"], "company_id": acme.get()}),
        )
        .await;
    // Another worker holds the company's items for a while: the contact goes alone.
    let store = bed.store();
    let held = store
        .claim_outbox(
            bed.portal,
            1,
            std::time::Duration::from_secs(3),
            "elsewhere",
        )
        .await
        .unwrap();
    assert_eq!(held[0].object_type, ObjectType::Companies);
    bed.push_all().await;
    let contact_h = hubspot_id(&bed, ObjectType::Contacts, contact).await;
    assert!(
        remote_links(&bed, ObjectType::Contacts, ObjectType::Companies, contact_h)
            .await
            .is_empty()
    );
    assert_eq!(
        store.queue_depths(bed.portal).await.unwrap().dead_letters,
        0,
        "a link waiting for an id is not a failure"
    );

    // Once the company reaches HubSpot (its claim expires), the waiting link follows.
    let acme_h = common::eventually(std::time::Duration::from_secs(20), async || {
        bed.push_all().await;
        let links =
            remote_links(&bed, ObjectType::Contacts, ObjectType::Companies, contact_h).await;
        (!links.is_empty()).then_some(links)
    })
    .await;
    assert_eq!(
        remote_ids(&acme_h),
        vec![hubspot_id(&bed, ObjectType::Companies, acme).await.0]
    );
}

#[tokio::test]
async fn hubspot_association_change_updates_local_link() {
    let mut bed = TestBed::start().await;
    bed.serve().await;
    let admin = bed.emulator.admin();
    let company = admin
        .create(
            PORTAL,
            ObjectKind::Company,
            [("name", "Initech")],
            DEFAULT_USER_ID,
        )
        .unwrap();
    let contact = admin
        .create(
            PORTAL,
            ObjectKind::Contact,
            [("email", "peter@initech.example")],
            DEFAULT_USER_ID,
        )
        .unwrap();
    let deal = admin
        .create(
            PORTAL,
            ObjectKind::Deal,
            [
                ("dealname", "TPS"),
                ("dealstage", "appointmentscheduled"),
                ("pipeline", "default"),
            ],
            DEFAULT_USER_ID,
        )
        .unwrap();
    bed.settle_inbound().await;
    let company_l = local_by_hubspot(&bed, ObjectType::Companies, company).await;
    let contact_l = local_by_hubspot(&bed, ObjectType::Contacts, contact).await;
    let deal_l = local_by_hubspot(&bed, ObjectType::Deals, deal).await;

    // A person links them in HubSpot.
    admin
        .associate(
            PORTAL,
            (ObjectKind::Contact, contact),
            (ObjectKind::Company, company),
            Some(1),
            DEFAULT_USER_ID,
        )
        .unwrap();
    admin
        .associate(
            PORTAL,
            (ObjectKind::Deal, deal),
            (ObjectKind::Contact, contact),
            None,
            DEFAULT_USER_ID,
        )
        .unwrap();
    admin
        .associate(
            PORTAL,
            (ObjectKind::Deal, deal),
            (ObjectKind::Company, company),
            None,
            DEFAULT_USER_ID,
        )
        .unwrap();
    bed.settle_inbound().await;
    assert_eq!(
        local_field(&bed, ObjectType::Contacts, contact_l, "company_id").await,
        json!(company_l.get())
    );
    assert_eq!(
        local_field(&bed, ObjectType::Deals, deal_l, "company_id").await,
        json!(company_l.get())
    );
    assert_eq!(
        local_field(&bed, ObjectType::Deals, deal_l, "contact_ids").await,
        json!([contact_l.get()])
    );
    // Applying HubSpot's links queued nothing for HubSpot.
    assert_eq!(outbox_depth(&bed).await, 0);

    // And unlinks.
    admin
        .dissociate(
            PORTAL,
            (ObjectKind::Contact, contact),
            (ObjectKind::Company, company),
            DEFAULT_USER_ID,
        )
        .unwrap();
    admin
        .dissociate(
            PORTAL,
            (ObjectKind::Deal, deal),
            (ObjectKind::Contact, contact),
            DEFAULT_USER_ID,
        )
        .unwrap();
    bed.settle_inbound().await;
    assert_eq!(
        local_field(&bed, ObjectType::Contacts, contact_l, "company_id").await,
        Value::Null
    );
    assert!(
        local_field(&bed, ObjectType::Deals, deal_l, "contact_ids")
            .await
            .is_null()
    );
    assert_eq!(outbox_depth(&bed).await, 0);
}

#[tokio::test]
async fn hubspot_link_to_a_record_the_app_lacks_imports_it() {
    let mut bed = TestBed::start().await;
    bed.serve().await;
    let admin = bed.emulator.admin();
    let contact = admin
        .create(
            PORTAL,
            ObjectKind::Contact,
            [("email", "milton@initech.example")],
            DEFAULT_USER_ID,
        )
        .unwrap();
    bed.settle_inbound().await;
    let contact_l = local_by_hubspot(&bed, ObjectType::Contacts, contact).await;
    // The company's own creation event is lost; only the association event arrives.
    bed.emulator
        .admin()
        .set_webhook(PORTAL, None, None)
        .unwrap();
    let company = admin
        .create(
            PORTAL,
            ObjectKind::Company,
            [("name", "Stapler Inc")],
            DEFAULT_USER_ID,
        )
        .unwrap();
    bed.emulator
        .admin()
        .set_webhook(
            PORTAL,
            Some(format!(
                "{}{}",
                bed.server_url.clone().unwrap(),
                hubsync_server::WEBHOOK_PATH
            )),
            None,
        )
        .unwrap();
    admin
        .associate(
            PORTAL,
            (ObjectKind::Contact, contact),
            (ObjectKind::Company, company),
            Some(1),
            DEFAULT_USER_ID,
        )
        .unwrap();
    bed.settle_inbound().await;
    let company_l = local_by_hubspot(&bed, ObjectType::Companies, company).await;
    assert_eq!(
        local_field(&bed, ObjectType::Contacts, contact_l, "company_id").await,
        json!(company_l.get())
    );
}

#[tokio::test]
async fn own_association_writes_do_not_bounce_back() {
    for source in [ApiChangeSource::Integration, ApiChangeSource::Api] {
        let mut bed = TestBed::start().await;
        bed.serve().await;
        bed.emulator
            .admin()
            .update_settings(|s| s.api_change_source = source);
        let acme = bed
            .app_insert(
                ObjectType::Companies,
                json!({"name": "Acme", "domain": "acme.example"}),
            )
            .await;
        let ada = bed
            .app_insert(
                ObjectType::Contacts,
                json!({"email_addresses": ["ada@acme.example"], "company_id": acme.get()}),
            )
            .await;
        let deal = bed
            .app_insert(
                ObjectType::Deals,
                json!({"name": "Echo", "stage": "appointmentscheduled", "pipeline": "default", "company_id": acme.get(), "contact_ids": [ada.get()]}),
            )
            .await;
        bed.push_all().await;
        bed.settle_inbound().await;
        let writes_before =
            calls(&bed, "associations.batch_create") + calls(&bed, "associations.batch_archive");
        // The echoes changed nothing locally and queued nothing for HubSpot.
        assert_eq!(
            local_field(&bed, ObjectType::Contacts, ada, "company_id").await,
            json!(acme.get()),
            "{source:?}"
        );
        assert_eq!(
            local_field(&bed, ObjectType::Deals, deal, "contact_ids").await,
            json!([ada.get()]),
            "{source:?}"
        );
        assert_eq!(bed.push_all().await, 0, "{source:?}: nothing to push back");
        assert_eq!(
            calls(&bed, "associations.batch_create") + calls(&bed, "associations.batch_archive"),
            writes_before
        );
        let echoes = match source {
            ApiChangeSource::Integration => bed.counter(counters::ECHO_CHANGE_SOURCE).await,
            ApiChangeSource::Api => bed.counter(counters::ECHO_FINGERPRINT).await,
        };
        assert!(echoes > 0, "{source:?}: echoes counted");
        assert_eq!(
            bed.counter(associations::COUNTER_APPLIED).await,
            0,
            "{source:?}"
        );
    }
}

#[tokio::test]
async fn import_brings_associations() {
    let bed = TestBed::start().await;
    let admin = bed.emulator.admin();
    let mut contacts = Vec::new();
    let company = admin
        .create(
            PORTAL,
            ObjectKind::Company,
            [("name", "Hooli")],
            DEFAULT_USER_ID,
        )
        .unwrap();
    for i in 0..250 {
        let c = admin
            .create(
                PORTAL,
                ObjectKind::Contact,
                [("email", format!("p{i}@hooli.example"))],
                DEFAULT_USER_ID,
            )
            .unwrap();
        if i % 2 == 0 {
            admin
                .associate(
                    PORTAL,
                    (ObjectKind::Contact, c),
                    (ObjectKind::Company, company),
                    Some(1),
                    DEFAULT_USER_ID,
                )
                .unwrap();
        }
        contacts.push(c);
    }
    let deal = admin
        .create(
            PORTAL,
            ObjectKind::Deal,
            [
                ("dealname", "Nucleus"),
                ("dealstage", "appointmentscheduled"),
                ("pipeline", "default"),
            ],
            DEFAULT_USER_ID,
        )
        .unwrap();
    for c in &contacts[..3] {
        admin
            .associate(
                PORTAL,
                (ObjectKind::Deal, deal),
                (ObjectKind::Contact, *c),
                None,
                DEFAULT_USER_ID,
            )
            .unwrap();
    }
    admin
        .associate(
            PORTAL,
            (ObjectKind::Deal, deal),
            (ObjectKind::Company, company),
            None,
            DEFAULT_USER_ID,
        )
        .unwrap();

    for ty in ObjectType::ALL {
        while !reconcile::import_step(&bed.engine, bed.portal, ty)
            .await
            .unwrap()
            .done
        {}
    }
    bed.emulator.admin().reset_stats();
    let mut reads = 0;
    while let Some(report) = associations::import_step(&bed.engine, bed.portal, None)
        .await
        .unwrap()
    {
        reads += report.reads;
    }
    // 250 contacts and 1 deal: one read for the contacts, two for the deal.
    assert_eq!(reads, 3);
    assert_eq!(calls(&bed, "associations.batch_read"), 3);

    let company_l = local_by_hubspot(&bed, ObjectType::Companies, company).await;
    for (i, c) in contacts.iter().enumerate() {
        let local = local_by_hubspot(&bed, ObjectType::Contacts, *c).await;
        let expected = if i % 2 == 0 {
            json!(company_l.get())
        } else {
            Value::Null
        };
        assert_eq!(
            local_field(&bed, ObjectType::Contacts, local, "company_id").await,
            expected
        );
    }
    let deal_l = local_by_hubspot(&bed, ObjectType::Deals, deal).await;
    let mut expected = Vec::new();
    for c in &contacts[..3] {
        expected.push(local_by_hubspot(&bed, ObjectType::Contacts, *c).await.get());
    }
    expected.sort_unstable();
    assert_eq!(
        local_field(&bed, ObjectType::Deals, deal_l, "contact_ids").await,
        json!(expected)
    );
    assert_eq!(
        local_field(&bed, ObjectType::Deals, deal_l, "company_id").await,
        json!(company_l.get())
    );
    // Importing links queued nothing for HubSpot.
    assert_eq!(outbox_depth(&bed).await, 0);
}

#[tokio::test]
async fn association_drift_is_repaired_by_reconcile() {
    // No webhooks: nothing tells hubsync about HubSpot's association changes.
    let bed = TestBed::start().await;
    let acme = bed
        .app_insert(
            ObjectType::Companies,
            json!({"name": "Acme", "domain": "acme.example"}),
        )
        .await;
    let ada = bed
        .app_insert(
            ObjectType::Contacts,
            json!({"email_addresses": ["ada@acme.example"]}),
        )
        .await;
    let bob = bed
        .app_insert(
            ObjectType::Contacts,
            json!({"email_addresses": ["bob@acme.example"]}),
        )
        .await;
    let cy = bed
        .app_insert(
            ObjectType::Contacts,
            json!({"email_addresses": ["cy@acme.example"]}),
        )
        .await;
    let deal = bed
        .app_insert(
            ObjectType::Deals,
            json!({"name": "Drift", "stage": "appointmentscheduled", "pipeline": "default", "contact_ids": [ada.get(), bob.get()]}),
        )
        .await;
    bed.push_all().await;
    let acme_h = hubspot_id(&bed, ObjectType::Companies, acme).await;
    let ada_h = hubspot_id(&bed, ObjectType::Contacts, ada).await;
    let bob_h = hubspot_id(&bed, ObjectType::Contacts, bob).await;
    let cy_h = hubspot_id(&bed, ObjectType::Contacts, cy).await;
    let deal_h = hubspot_id(&bed, ObjectType::Deals, deal).await;

    // HubSpot side, unreported: Ada gets a company, Bob leaves the deal.
    let admin = bed.emulator.admin();
    admin
        .associate(
            PORTAL,
            (ObjectKind::Contact, ada_h.0),
            (ObjectKind::Company, acme_h.0),
            Some(1),
            DEFAULT_USER_ID,
        )
        .unwrap();
    admin
        .dissociate(
            PORTAL,
            (ObjectKind::Deal, deal_h.0),
            (ObjectKind::Contact, bob_h.0),
            DEFAULT_USER_ID,
        )
        .unwrap();
    // App side, never pushed (written without capture, as a lost outbox item): Cy joins.
    bed.store()
        .apply_associations(
            bed.portal,
            vec![hubsync_store::AssociationOp::SetLocal {
                object_type: ObjectType::Deals,
                local_id: deal,
                field: "contact_ids".into(),
                expected: json!([ada.get(), bob.get()]),
                value: json!([ada.get(), bob.get(), cy.get()]),
            }],
            &[],
            None,
        )
        .await
        .unwrap();
    assert_eq!(outbox_depth(&bed).await, 0);

    bed.emulator.admin().reset_stats();
    let report = associations::reconcile_pass(&bed.engine, bed.portal, None)
        .await
        .unwrap();
    // 3 contacts + 1 deal: one read for contacts, two for the deal.
    assert_eq!(report.reads, 3);
    assert_eq!(report.repaired_local, 2, "{report:?}");
    assert_eq!(report.repaired_remote, 1, "{report:?}");
    assert_eq!(
        local_field(&bed, ObjectType::Contacts, ada, "company_id").await,
        json!(acme.get())
    );
    assert_eq!(
        local_field(&bed, ObjectType::Deals, deal, "contact_ids").await,
        json!([ada.get(), cy.get()])
    );
    bed.push_all().await;
    assert_eq!(
        remote_ids(&remote_links(&bed, ObjectType::Deals, ObjectType::Contacts, deal_h).await),
        {
            let mut v = vec![ada_h.0, cy_h.0];
            v.sort_unstable();
            v
        }
    );
    // A second pass finds nothing to do.
    let again = associations::reconcile_pass(&bed.engine, bed.portal, None)
        .await
        .unwrap();
    assert_eq!((again.repaired_local, again.repaired_remote), (0, 0));
}

#[tokio::test]
async fn company_link_changed_on_both_sides_is_settled_by_policy_and_recorded() {
    let bed = TestBed::start().await;
    let acme = bed
        .app_insert(
            ObjectType::Companies,
            json!({"name": "Acme", "domain": "acme.example"}),
        )
        .await;
    let globex = bed
        .app_insert(
            ObjectType::Companies,
            json!({"name": "Globex", "domain": "globex.example"}),
        )
        .await;
    let initech = bed
        .app_insert(
            ObjectType::Companies,
            json!({"name": "Initech", "domain": "initech.example"}),
        )
        .await;
    let ada = bed
        .app_insert(
            ObjectType::Contacts,
            json!({"email_addresses": ["ada@acme.example"], "company_id": acme.get()}),
        )
        .await;
    bed.push_all().await;
    let acme_h = hubspot_id(&bed, ObjectType::Companies, acme).await;
    let globex_h = hubspot_id(&bed, ObjectType::Companies, globex).await;
    let ada_h = hubspot_id(&bed, ObjectType::Contacts, ada).await;

    // Local: Initech (not yet pushed). HubSpot: Globex (unreported).
    app_update(
        &bed,
        ObjectType::Contacts,
        ada,
        "company_id",
        json!(initech.get()),
    )
    .await;
    let admin = bed.emulator.admin();
    admin
        .dissociate(
            PORTAL,
            (ObjectKind::Contact, ada_h.0),
            (ObjectKind::Company, acme_h.0),
            DEFAULT_USER_ID,
        )
        .unwrap();
    admin
        .associate(
            PORTAL,
            (ObjectKind::Contact, ada_h.0),
            (ObjectKind::Company, globex_h.0),
            Some(1),
            DEFAULT_USER_ID,
        )
        .unwrap();
    let report = associations::reconcile_pass(&bed.engine, bed.portal, None)
        .await
        .unwrap();
    assert_eq!(report.conflicts, 1, "{report:?}");
    let conflicts = bed
        .store()
        .list_conflicts(bed.portal, None, 10)
        .await
        .unwrap();
    let c = conflicts
        .iter()
        .find(|c| c.conflict.field == "company_id")
        .expect("conflict recorded");
    assert_eq!(c.local_id, Some(ada));
    assert_eq!(c.conflict.local, json!(initech.get()));
    assert_eq!(c.conflict.remote, json!(globex.get()));
    assert_eq!(c.conflict.base, json!(acme.get()));
    // Whoever won, both sides end up holding the same link.
    bed.push_all().await;
    let local = local_field(&bed, ObjectType::Contacts, ada, "company_id").await;
    let winner = LocalId(local.as_i64().unwrap());
    let winner_h = hubspot_id(&bed, ObjectType::Companies, winner).await;
    assert_eq!(
        remote_ids(&remote_links(&bed, ObjectType::Contacts, ObjectType::Companies, ada_h).await),
        vec![winner_h.0]
    );
}
