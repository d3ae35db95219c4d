//! The conformance cases. Each takes a fresh [`Harness`] and goes through the public
//! [`Store`](crate::Store) interface, writing app data with plain SQL as the app would.

use std::collections::BTreeMap;
use std::time::Duration;

use hubsync_core::{
    Changes, Conflict, ConflictPolicy, FieldMap, Fingerprint, HubspotId, LocalId, ObjectType,
    PortalId, Side,
};
use serde_json::{Value, json};

use super::Harness;
use crate::StoreError;
use crate::db::Arg;
use crate::model::*;

const P: PortalId = PortalId(7);
const OTHER: PortalId = PortalId(8);
const LONG: Duration = Duration::from_secs(60);
/// A lease a crashed worker leaves behind; long enough that the checks right after a claim
/// see it held even on a loaded machine.
const SHORT: Duration = Duration::from_millis(400);
/// Long enough for [`SHORT`] to expire.
const SHORT_EXPIRED: Duration = Duration::from_millis(500);

fn p(portal: PortalId) -> Arg {
    Arg::Int(Some(portal.get() as i64))
}

fn fields(pairs: &[(&str, Value)]) -> FieldMap {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect()
}

fn changes(pairs: &[(&str, Value)]) -> Changes {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect()
}

fn upsert(local_id: Option<LocalId>, hubspot_id: u64, pairs: &[(&str, Value)]) -> ApplyOp {
    let base = fields(pairs);
    ApplyOp::Upsert(InboundUpsert {
        object_type: ObjectType::Contacts,
        local_id,
        hubspot_id: HubspotId(hubspot_id),
        changes: changes(pairs),
        fp_received: Some(Fingerprint::of(&base)),
        base_ts: base.keys().map(|k| (k.to_owned(), 1_000)).collect(),
        base,
        remote_updated_at: Some(1_000),
    })
}

/// Creates a contact from HubSpot (not captured); returns its local id.
async fn create_synced(h: &Harness, hubspot_id: u64, pairs: &[(&str, Value)]) -> LocalId {
    let result = h
        .store
        .apply_inbound(P, vec![upsert(None, hubspot_id, pairs)], &[], None)
        .await
        .unwrap();
    result.local_ids[0].expect("a row was written")
}

/// Inserts a contact as the app would; returns its id.
async fn app_insert_contact(h: &Harness, first_name: &str, email: &str) -> LocalId {
    h.app
        .exec(
            "INSERT INTO contacts (portal_id, first_name, email_addresses) VALUES ($1, $2, $3)",
            vec![p(P), first_name.into(), Arg::Json(Some(json!([email])))],
        )
        .await;
    let found = h
        .store
        .find_by_key(P, ObjectType::Contacts, "email_addresses", &json!(email))
        .await
        .unwrap();
    found.last().expect("inserted contact").local_id
}

async fn app_set_title(h: &Harness, id: LocalId, title: &str) {
    h.app
        .exec(
            "UPDATE contacts SET title = $1, updated_at = updated_at + 1 WHERE id = $2",
            vec![title.into(), Arg::Int(Some(id.get()))],
        )
        .await;
}

async fn claim_all(h: &Harness, worker: &str) -> Vec<OutboxClaim> {
    h.store.claim_outbox(P, 100, LONG, worker).await.unwrap()
}

fn written(hubspot_id: u64, base: FieldMap) -> AckOutcome {
    AckOutcome::Written {
        hubspot_id: HubspotId(hubspot_id),
        fp_sent: Fingerprint::of(&base),
        base_ts: BTreeMap::new(),
        base,
        origin: Some("hubsync:1".into()),
        remote_updated_at: Some(2_000),
        written_fields: None,
    }
}

async fn outbox_depth(h: &Harness) -> u64 {
    h.store.queue_depths(P).await.unwrap().outbox
}

// ----- capture ----------------------------------------------------------------------------

pub async fn app_writes_are_captured_by_triggers(h: Harness) {
    let id = app_insert_contact(&h, "Ada", "ada@example.com").await;
    let claims = claim_all(&h, "w").await;
    assert_eq!(claims.len(), 1);
    assert_eq!((claims[0].local_id, claims[0].op), (id, OutboxOp::Upsert));
    h.store
        .ack_outbound(
            P,
            vec![OutboundAck {
                range: claims[0].range(),
                outcome: written(501, FieldMap::new()),
            }],
            None,
        )
        .await
        .unwrap();
    assert_eq!(outbox_depth(&h).await, 0);

    app_set_title(&h, id, "Countess").await;
    let claims = claim_all(&h, "w").await;
    assert_eq!((claims.len(), claims[0].op), (1, OutboxOp::Upsert));
    h.store
        .ack_outbound(
            P,
            vec![OutboundAck {
                range: claims[0].range(),
                outcome: written(501, FieldMap::new()),
            }],
            None,
        )
        .await
        .unwrap();

    // A hard delete is captured with the HubSpot id, since the row is gone.
    h.app
        .exec(
            "DELETE FROM contacts WHERE id = $1",
            vec![Arg::Int(Some(id.get()))],
        )
        .await;
    let claims = claim_all(&h, "w").await;
    assert_eq!(claims.len(), 1);
    assert_eq!(claims[0].op, OutboxOp::Delete);
    assert_eq!(claims[0].hubspot_id, Some(HubspotId(501)));
}

pub async fn soft_delete_is_captured_as_delete(h: Harness) {
    let id = app_insert_contact(&h, "Ada", "ada@example.com").await;
    h.app
        .exec(
            "UPDATE contacts SET deleted_at = 5 WHERE id = $1",
            vec![Arg::Int(Some(id.get()))],
        )
        .await;
    // Touching an already deleted row captures nothing more.
    h.app
        .exec(
            "UPDATE contacts SET deleted_at = 6 WHERE id = $1",
            vec![Arg::Int(Some(id.get()))],
        )
        .await;
    let claims = claim_all(&h, "w").await;
    assert_eq!(claims.len(), 1);
    assert_eq!(claims[0].op, OutboxOp::Delete, "latest op wins");
    assert_eq!(claims[0].items, 2, "insert and soft delete");
}

pub async fn hubsync_applies_are_not_captured(h: Harness) {
    let id = create_synced(&h, 900, &[("first_name", json!("Grace"))]).await;
    assert_eq!(outbox_depth(&h).await, 0, "inbound create");
    h.store
        .apply_inbound(
            P,
            vec![upsert(Some(id), 900, &[("title", json!("Admiral"))])],
            &[],
            None,
        )
        .await
        .unwrap();
    assert_eq!(outbox_depth(&h).await, 0, "inbound update");
    let record = h
        .store
        .get_record(P, ObjectType::Contacts, id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(record.fields.get("title"), &json!("Admiral"));
    assert_eq!(record.fields.get("first_name"), &json!("Grace"));

    // The app's own write right after is still captured: the guard does not leak.
    app_set_title(&h, id, "Rear Admiral").await;
    assert_eq!(outbox_depth(&h).await, 1);
    let claims = claim_all(&h, "w").await;
    h.store
        .ack_outbound(
            P,
            vec![OutboundAck {
                range: claims[0].range(),
                outcome: written(900, FieldMap::new()),
            }],
            None,
        )
        .await
        .unwrap();
    assert_eq!(
        outbox_depth(&h).await,
        0,
        "ack writes the hubspot id uncaptured"
    );

    h.store
        .apply_inbound(
            P,
            vec![ApplyOp::Delete {
                object_type: ObjectType::Contacts,
                hubspot_id: HubspotId(900),
            }],
            &[],
            None,
        )
        .await
        .unwrap();
    assert_eq!(outbox_depth(&h).await, 0, "inbound delete");
}

// ----- outbox claims ----------------------------------------------------------------------

pub async fn claims_coalesce_all_items_of_a_record(h: Harness) {
    let a = app_insert_contact(&h, "A", "a@example.com").await;
    let b = app_insert_contact(&h, "B", "b@example.com").await;
    app_set_title(&h, a, "one").await;
    app_set_title(&h, a, "two").await;
    let claims = claim_all(&h, "w").await;
    assert_eq!(claims.len(), 2);
    assert_eq!(claims[0].local_id, a, "oldest record first");
    assert_eq!(claims[0].items, 3);
    assert_eq!(claims[1].local_id, b);
    assert_eq!(claims[1].items, 1);
    assert!(claims[0].max_item_id > claims[1].max_item_id);
    assert_eq!(claims[0].attempts, 1);

    let limited = {
        h.store
            .release_outbox(P, &[claims[0].range(), claims[1].range()], None)
            .await
            .unwrap();
        h.store.claim_outbox(P, 1, LONG, "w").await.unwrap()
    };
    assert_eq!(limited.len(), 1);
    assert_eq!(limited[0].local_id, a);
}

pub async fn claims_walk_past_busy_records_to_fill_the_batch(h: Harness) {
    // The oldest items all belong to two records: one edited many times, and one in flight
    // with more edits queued behind its lease. A claim still finds the records after them.
    let busy = app_insert_contact(&h, "Busy", "busy@example.com").await;
    for i in 0..40 {
        app_set_title(&h, busy, &format!("edit {i}")).await;
    }
    let flying = app_insert_contact(&h, "Flying", "flying@example.com").await;
    let in_flight = h.store.claim_outbox(P, 2, LONG, "w1").await.unwrap();
    let ids: Vec<LocalId> = in_flight.iter().map(|c| c.local_id).collect();
    assert_eq!(ids, vec![busy, flying]);
    assert_eq!(in_flight[0].items, 41, "every queued item of a record");
    h.store
        .release_outbox(P, &[in_flight[0].range()], None)
        .await
        .unwrap();
    for i in 0..40 {
        app_set_title(&h, flying, &format!("edit {i}")).await;
    }
    let mut rest = Vec::new();
    for name in ["C", "D", "E"] {
        rest.push(app_insert_contact(&h, name, &format!("{name}@example.com")).await);
    }

    let claims = h.store.claim_outbox(P, 3, LONG, "w2").await.unwrap();
    let ids: Vec<LocalId> = claims.iter().map(|c| c.local_id).collect();
    assert_eq!(
        ids,
        vec![busy, rest[0], rest[1]],
        "the record in flight is skipped whole; the batch is filled from after it"
    );
    assert_eq!(claims[0].items, 41);
    let last = h.store.claim_outbox(P, 3, LONG, "w2").await.unwrap();
    let ids: Vec<LocalId> = last.iter().map(|c| c.local_id).collect();
    assert_eq!(ids, vec![rest[2]]);
}

pub async fn ack_keeps_items_captured_during_the_push(h: Harness) {
    let a = app_insert_contact(&h, "A", "a@example.com").await;
    let claims = claim_all(&h, "w").await;
    // The app writes while the push is in flight.
    app_set_title(&h, a, "during push").await;
    let base = fields(&[("first_name", json!("A"))]);
    h.store
        .ack_outbound(
            P,
            vec![OutboundAck {
                range: claims[0].range(),
                outcome: written(77, base.clone()),
            }],
            None,
        )
        .await
        .unwrap();
    assert_eq!(outbox_depth(&h).await, 1, "the later capture stays queued");

    let state = h
        .store
        .get_sync_state(P, ObjectType::Contacts, a)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(state.hubspot_id, Some(HubspotId(77)));
    assert_eq!(state.base, Some(base.clone()));
    assert_eq!(state.fp_sent, Some(Fingerprint::of(&base)));
    assert_eq!(state.last_origin.as_deref(), Some("hubsync:1"));
    let record = h
        .store
        .get_record(P, ObjectType::Contacts, a)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(record.hubspot_id, Some(HubspotId(77)));

    let again = claim_all(&h, "w").await;
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].items, 1);
    assert_eq!(
        again[0].hubspot_id, None,
        "captured before the ack set the id"
    );
    h.store
        .ack_outbound(
            P,
            vec![OutboundAck {
                range: again[0].range(),
                outcome: AckOutcome::Deleted,
            }],
            None,
        )
        .await
        .unwrap();
    assert_eq!(outbox_depth(&h).await, 0);
    assert!(
        h.store
            .get_sync_state(P, ObjectType::Contacts, a)
            .await
            .unwrap()
            .is_none()
    );
}

pub async fn a_claimed_record_is_not_claimed_twice(h: Harness) {
    let a = app_insert_contact(&h, "A", "a@example.com").await;
    let first = claim_all(&h, "w1").await;
    assert_eq!(first.len(), 1);
    app_set_title(&h, a, "new").await;
    let second = claim_all(&h, "w2").await;
    assert!(
        second.is_empty(),
        "a record in flight is not split across workers: {second:?}"
    );
}

pub async fn expired_claims_are_claimed_again_after_a_crash(h: Harness) {
    let a = app_insert_contact(&h, "A", "a@example.com").await;
    let b = app_insert_contact(&h, "B", "b@example.com").await;
    // Worker 1 claims a batch and dies without acknowledging it.
    let dead = h.store.claim_outbox(P, 10, SHORT, "w1").await.unwrap();
    assert_eq!(dead.len(), 2);
    assert!(
        claim_all(&h, "w2").await.is_empty(),
        "leased items are not claimable"
    );
    tokio::time::sleep(SHORT_EXPIRED).await;
    let recovered = claim_all(&h, "w2").await;
    let ids: Vec<LocalId> = recovered.iter().map(|c| c.local_id).collect();
    assert_eq!(ids, vec![a, b]);
    assert!(
        recovered.iter().all(|c| c.attempts == 2),
        "the crash counts as an attempt"
    );
    let acks = recovered
        .iter()
        .map(|c| OutboundAck {
            range: c.range(),
            outcome: written(1000 + c.local_id.get() as u64, FieldMap::new()),
        })
        .collect();
    h.store.ack_outbound(P, acks, None).await.unwrap();
    assert_eq!(outbox_depth(&h).await, 0);
}

pub async fn released_claims_are_claimable_at_once(h: Harness) {
    app_insert_contact(&h, "A", "a@example.com").await;
    let claims = claim_all(&h, "w1").await;
    h.store
        .release_outbox(P, &[claims[0].range()], None)
        .await
        .unwrap();
    let again = claim_all(&h, "w2").await;
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].attempts, 1, "a release is not an attempt");
}

pub async fn retryable_failure_waits_until_retry_at(h: Harness) {
    app_insert_contact(&h, "A", "a@example.com").await;
    let claims = claim_all(&h, "w").await;
    let failure = OutboundFailure {
        range: claims[0].range(),
        reason: "HubSpot 429".into(),
        category: "rate_limit".into(),
        retry_at: Some(now_ms() + 60_000),
        payload: Value::Null,
    };
    h.store.fail_outbound(P, vec![failure], None).await.unwrap();
    assert!(claim_all(&h, "w").await.is_empty(), "not before retry_at");
    assert_eq!(outbox_depth(&h).await, 1);
    assert_eq!(h.store.queue_depths(P).await.unwrap().dead_letters, 0);
    let failure = OutboundFailure {
        range: claims[0].range(),
        reason: "HubSpot 429".into(),
        category: "rate_limit".into(),
        retry_at: Some(now_ms() - 1),
        payload: Value::Null,
    };
    h.store.fail_outbound(P, vec![failure], None).await.unwrap();
    assert_eq!(claim_all(&h, "w").await.len(), 1);
}

// ----- dead letters -----------------------------------------------------------------------

pub async fn failed_push_is_dead_lettered_and_can_be_retried_or_dropped(h: Harness) {
    let a = app_insert_contact(&h, "A", "not-an-email").await;
    let claims = claim_all(&h, "w").await;
    let failure = OutboundFailure {
        range: claims[0].range(),
        reason: "Property values were not valid: email".into(),
        category: "validation".into(),
        retry_at: None,
        payload: json!({"status": 400}),
    };
    h.store.fail_outbound(P, vec![failure], None).await.unwrap();
    assert_eq!(outbox_depth(&h).await, 0, "the items left the outbox");

    let letters = h.store.list_dead_letters(P, None, 10).await.unwrap();
    assert_eq!(letters.len(), 1);
    let letter = &letters[0];
    assert_eq!(letter.letter.source, DeadLetterSource::Outbound);
    assert_eq!(letter.letter.local_id, Some(a));
    assert_eq!(letter.letter.category, "validation");
    assert_eq!(letter.letter.attempts, 1);
    assert_eq!(letter.letter.payload["detail"]["status"], json!(400));
    assert_eq!(
        h.store
            .get_dead_letter(P, letter.id)
            .await
            .unwrap()
            .as_ref(),
        Some(letter)
    );
    assert!(
        h.store
            .list_dead_letters(OTHER, None, 10)
            .await
            .unwrap()
            .is_empty(),
        "scoped by portal"
    );

    assert!(h.store.retry_dead_letter(P, letter.id).await.unwrap());
    assert!(
        h.store
            .list_dead_letters(P, None, 10)
            .await
            .unwrap()
            .is_empty()
    );
    let again = claim_all(&h, "w").await;
    assert_eq!(
        (again.len(), again[0].local_id, again[0].op),
        (1, a, OutboxOp::Upsert)
    );

    let failure = OutboundFailure {
        range: again[0].range(),
        reason: "still invalid".into(),
        category: "validation".into(),
        retry_at: None,
        payload: Value::Null,
    };
    h.store.fail_outbound(P, vec![failure], None).await.unwrap();
    let id = h.store.list_dead_letters(P, None, 10).await.unwrap()[0].id;
    assert!(h.store.drop_dead_letter(P, id).await.unwrap());
    assert!(!h.store.drop_dead_letter(P, id).await.unwrap());
    assert!(!h.store.retry_dead_letter(P, id).await.unwrap());
    assert_eq!(
        h.store.queue_depths(P).await.unwrap(),
        QueueDepths::default()
    );

    // A dead letter from the capture path (a row the mapping cannot translate).
    let capture = NewDeadLetter {
        source: DeadLetterSource::Capture,
        object_type: Some(ObjectType::Contacts),
        local_id: Some(a),
        hubspot_id: None,
        reason: "email_addresses: expected a list".into(),
        category: "mapping".into(),
        payload: Value::Null,
        attempts: 0,
    };
    let id = h.store.add_dead_letter(P, &capture).await.unwrap();
    assert_eq!(
        h.store
            .get_dead_letter(P, id)
            .await
            .unwrap()
            .unwrap()
            .letter,
        capture
    );
}

fn event(object_id: u64, property: Option<&str>, occurred_at: i64, event_id: i64) -> InboxEvent {
    InboxEvent {
        portal: P,
        subscription_type: if property.is_some() {
            "contact.propertyChange"
        } else {
            "contact.creation"
        }
        .into(),
        object_type: Some(ObjectType::Contacts),
        object_id: Some(HubspotId(object_id)),
        property_name: property.map(str::to_owned),
        occurred_at,
        event_id,
        payload: json!({"objectId": object_id, "eventId": event_id, "propertyName": property}),
    }
}

pub async fn failed_inbound_event_is_dead_lettered_and_retried_into_the_inbox(h: Harness) {
    let e = event(5, Some("email"), 1_000, 1);
    h.store
        .insert_inbox(std::slice::from_ref(&e))
        .await
        .unwrap();
    let items = h.store.claim_inbox(P, 10, LONG, "w").await.unwrap();
    let failure = InboxFailure {
        id: items[0].id,
        reason: "mapping failed".into(),
        category: "mapping".into(),
        retry_at: None,
    };
    h.store.fail_inbox(P, vec![failure], None).await.unwrap();
    let depths = h.store.queue_depths(P).await.unwrap();
    assert_eq!((depths.inbox, depths.dead_letters), (0, 1));

    let letter = h
        .store
        .list_dead_letters(P, None, 10)
        .await
        .unwrap()
        .remove(0);
    assert_eq!(letter.letter.source, DeadLetterSource::Inbound);
    assert_eq!(letter.letter.hubspot_id, Some(HubspotId(5)));
    assert!(h.store.retry_dead_letter(P, letter.id).await.unwrap());
    let items = h.store.claim_inbox(P, 10, LONG, "w").await.unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0].identity, e.identity());
    assert_eq!(items[0].payload, e.payload);
}

// ----- inbox ------------------------------------------------------------------------------

/// A delivery larger than one multi-row statement: stored whole, each event once, duplicates
/// within the delivery and redeliveries counted as such.
pub async fn large_deliveries_are_stored_once_per_event(h: Harness) {
    let mut delivery: Vec<InboxEvent> = (0..150)
        .map(|i| event(100 + i, Some("email"), 1_000 + i as i64, i as i64))
        .collect();
    delivery.push(delivery[3].clone());
    delivery.push(delivery[149].clone());
    let first = h.store.insert_inbox(&delivery).await.unwrap();
    assert_eq!(
        first,
        InboxInsert {
            inserted: 150,
            duplicates: 2
        }
    );
    let mut redelivery = delivery[..140].to_vec();
    redelivery.push(event(999, Some("email"), 5, 5));
    let again = h.store.insert_inbox(&redelivery).await.unwrap();
    assert_eq!(
        again,
        InboxInsert {
            inserted: 1,
            duplicates: 140
        }
    );
    assert_eq!(h.store.queue_depths(P).await.unwrap().inbox, 151);
    let claimed = h.store.claim_inbox(P, 1_000, LONG, "w").await.unwrap();
    assert_eq!(claimed.len(), 151);
    let stored = claimed
        .iter()
        .find(|item| item.object_id == Some(HubspotId(103)))
        .expect("stored event");
    assert_eq!(stored.identity, delivery[3].identity());
    assert_eq!(stored.payload, delivery[3].payload);
    assert_eq!(stored.occurred_at, 1_003);
}

/// An acknowledgement batch larger than one multi-row statement records every record: items
/// removed, sync states written or removed, HubSpot ids on the rows, and a stale claim on a
/// HubSpot id released.
pub async fn large_ack_batches_record_every_record(h: Harness) {
    h.app
        .exec(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 300) \
             INSERT INTO contacts (portal_id, first_name) SELECT $1, 'C' || i FROM n",
            vec![p(P)],
        )
        .await;
    let claims = h.store.claim_outbox(P, 1_000, LONG, "w").await.unwrap();
    assert_eq!(claims.len(), 300);
    // The first record holds HubSpot id 5000 from an earlier push; the last record's push
    // now gets that id (HubSpot merged them), so the first one's claim on it is stale.
    let holder = claims[0].local_id;
    h.store
        .ack_outbound(
            P,
            vec![OutboundAck {
                range: claims[0].range(),
                outcome: written(5_000, fields(&[("first_name", json!("C1"))])),
            }],
            None,
        )
        .await
        .unwrap();
    let acks: Vec<OutboundAck> = claims[1..]
        .iter()
        .enumerate()
        .map(|(i, claim)| OutboundAck {
            range: claim.range(),
            outcome: if i % 10 == 0 {
                AckOutcome::Deleted
            } else if i == claims.len() - 2 {
                written(5_000, fields(&[("first_name", json!("last"))]))
            } else {
                written(
                    10_000 + i as u64,
                    fields(&[("first_name", json!(format!("C{}", i + 2)))]),
                )
            },
        })
        .collect();
    h.store.ack_outbound(P, acks, None).await.unwrap();
    assert_eq!(outbox_depth(&h).await, 0);
    assert_eq!(
        h.store
            .get_sync_state(P, ObjectType::Contacts, holder)
            .await
            .unwrap(),
        None,
        "the stale claim on the HubSpot id is gone"
    );
    let ids: Vec<LocalId> = claims[1..].iter().map(|c| c.local_id).collect();
    let loaded = h
        .store
        .get_records_with_sync_states(P, ObjectType::Contacts, &ids)
        .await
        .unwrap();
    assert_eq!(loaded.len(), 299);
    for (i, (record, state)) in loaded.iter().enumerate() {
        if i % 10 == 0 {
            assert_eq!(
                *state, None,
                "deleted: no sync state for {}",
                record.local_id
            );
            continue;
        }
        let state = state.as_ref().expect("sync state");
        let expected = if i == 298 { 5_000 } else { 10_000 + i as u64 };
        assert_eq!(state.hubspot_id, Some(HubspotId(expected)));
        assert_eq!(record.hubspot_id, Some(HubspotId(expected)));
        assert_eq!(state.remote_updated_at, Some(2_000));
        assert_eq!(state.last_origin.as_deref(), Some("hubsync:1"));
        let name = if i == 298 {
            "last".to_owned()
        } else {
            format!("C{}", i + 2)
        };
        let base = fields(&[("first_name", json!(name))]);
        assert_eq!(state.base.as_ref(), Some(&base));
        assert_eq!(state.fp_sent, Some(Fingerprint::of(&base)));
    }
}

pub async fn inbox_stores_a_redelivered_event_once(h: Harness) {
    let e = event(5, Some("email"), 1_000, 42);
    let first = h.store.insert_inbox(&[e.clone(), e.clone()]).await.unwrap();
    assert_eq!(
        first,
        InboxInsert {
            inserted: 1,
            duplicates: 1
        }
    );
    let again = h
        .store
        .insert_inbox(std::slice::from_ref(&e))
        .await
        .unwrap();
    assert_eq!(
        again,
        InboxInsert {
            inserted: 0,
            duplicates: 1
        }
    );

    // Same eventId, different event: HubSpot's eventId alone is not unique.
    let other_property = event(5, Some("firstname"), 1_000, 42);
    let other_time = event(5, Some("email"), 1_001, 42);
    let other_object = event(6, Some("email"), 1_000, 42);
    let mut elsewhere = e.clone();
    elsewhere.portal = OTHER;
    let n = h
        .store
        .insert_inbox(&[other_property, other_time, other_object, elsewhere])
        .await
        .unwrap();
    assert_eq!(
        n,
        InboxInsert {
            inserted: 4,
            duplicates: 0
        }
    );

    let items = h.store.claim_inbox(P, 10, LONG, "w").await.unwrap();
    assert_eq!(items.len(), 4);
    assert!(items.windows(2).all(|w| w[0].id < w[1].id), "oldest first");
    assert_eq!(items[0].payload, e.payload);
    assert_eq!(
        h.store.portals_with_pending_inbox().await.unwrap(),
        vec![OTHER]
    );

    let ids: Vec<i64> = items.iter().map(|i| i.id).collect();
    h.store
        .apply_inbound(P, Vec::new(), &ids, None)
        .await
        .unwrap();
    assert_eq!(h.store.queue_depths(P).await.unwrap().inbox, 0);
    assert_eq!(h.store.queue_depths(OTHER).await.unwrap().inbox, 1);
}

pub async fn inbox_claims_recover_after_a_crash(h: Harness) {
    h.store
        .insert_inbox(&[event(1, None, 1, 1), event(2, None, 2, 2)])
        .await
        .unwrap();
    let dead = h.store.claim_inbox(P, 10, SHORT, "w1").await.unwrap();
    assert_eq!(dead.len(), 2);
    assert!(
        h.store
            .claim_inbox(P, 10, LONG, "w2")
            .await
            .unwrap()
            .is_empty()
    );
    tokio::time::sleep(SHORT_EXPIRED).await;
    let recovered = h.store.claim_inbox(P, 10, LONG, "w2").await.unwrap();
    assert_eq!(recovered.len(), 2);
    assert!(recovered.iter().all(|i| i.attempts == 2));
    h.store
        .release_inbox(P, &[recovered[0].id], None)
        .await
        .unwrap();
    let released = h.store.claim_inbox(P, 10, LONG, "w3").await.unwrap();
    assert_eq!(released.len(), 1);
    assert_eq!(released[0].id, recovered[0].id);
}

// ----- applying HubSpot's state -----------------------------------------------------------

pub async fn apply_inbound_creates_and_updates_rows_with_sync_state(h: Harness) {
    let id = create_synced(
        &h,
        300,
        &[
            ("first_name", json!("Ada")),
            ("custom_fields.tier", json!("gold")),
        ],
    )
    .await;
    let state = h
        .store
        .get_sync_state(P, ObjectType::Contacts, id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(state.hubspot_id, Some(HubspotId(300)));
    assert_eq!(
        state.base.as_ref().unwrap().get("custom_fields.tier"),
        &json!("gold")
    );
    assert_eq!(state.base_ts.get("first_name"), Some(&1_000));
    assert!(state.fp_received.is_some());
    assert_eq!(state.remote_updated_at, Some(1_000));

    // Without a local id, the row holding the HubSpot id is reused, not duplicated.
    let again = h
        .store
        .apply_inbound(
            P,
            vec![upsert(
                None,
                300,
                &[
                    ("custom_fields.tier", Value::Null),
                    ("last_name", json!("L")),
                ],
            )],
            &[],
            None,
        )
        .await
        .unwrap();
    assert_eq!(again.local_ids, vec![Some(id)]);
    let record = h
        .store
        .get_record(P, ObjectType::Contacts, id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        record.fields,
        fields(&[("first_name", json!("Ada")), ("last_name", json!("L"))])
    );
    assert_eq!(
        h.store
            .count_records(P, ObjectType::Contacts, &[])
            .await
            .unwrap(),
        1
    );

    let by_hubspot = h
        .store
        .get_sync_state_by_hubspot_id(P, ObjectType::Contacts, HubspotId(300))
        .await
        .unwrap();
    assert_eq!(by_hubspot.map(|s| s.local_id), Some(id));

    // A local edit that won the merge is queued in the same transaction.
    h.store
        .apply_inbound(
            P,
            vec![ApplyOp::Enqueue {
                object_type: ObjectType::Contacts,
                local_id: id,
                op: OutboxOp::Upsert,
            }],
            &[],
            None,
        )
        .await
        .unwrap();
    let claims = claim_all(&h, "w").await;
    assert_eq!(claims.len(), 1);
    assert_eq!(claims[0].hubspot_id, Some(HubspotId(300)));
}

/// An update's acknowledgement lays the fields it wrote over the base as it is at the commit:
/// a HubSpot change applied between the claim and the acknowledgement stays in the base.
pub async fn update_ack_keeps_base_fields_it_did_not_write(h: Harness) {
    let id = create_synced(
        &h,
        920,
        &[("first_name", json!("A")), ("title", json!("T0"))],
    )
    .await;
    app_set_title(&h, id, "T1").await;
    let claims = claim_all(&h, "w1").await;
    assert_eq!(claims.len(), 1);
    // HubSpot's first name changes and is applied while the push is in flight.
    let inbound = fields(&[("first_name", json!("B")), ("title", json!("T0"))]);
    h.store
        .apply_inbound(
            P,
            vec![ApplyOp::Upsert(InboundUpsert {
                object_type: ObjectType::Contacts,
                local_id: Some(id),
                hubspot_id: HubspotId(920),
                changes: changes(&[("first_name", json!("B"))]),
                fp_received: Some(Fingerprint::of(&inbound)),
                base_ts: inbound.keys().map(|k| (k.to_owned(), 3_000)).collect(),
                base: inbound,
                remote_updated_at: Some(3_000),
            })],
            &[],
            None,
        )
        .await
        .unwrap();
    // The push wrote the title only; its claim-time state still had the old first name.
    let sent = fields(&[("first_name", json!("A")), ("title", json!("T1"))]);
    h.store
        .ack_outbound(
            P,
            vec![OutboundAck {
                range: claims[0].range(),
                outcome: AckOutcome::Written {
                    hubspot_id: HubspotId(920),
                    fp_sent: Fingerprint::of(&sent),
                    base_ts: sent.keys().map(|k| (k.to_owned(), 5_000)).collect(),
                    base: sent,
                    origin: Some("hubsync:2".into()),
                    remote_updated_at: Some(5_000),
                    written_fields: Some(["title".to_owned()].into_iter().collect()),
                },
            }],
            None,
        )
        .await
        .unwrap();
    let state = h
        .store
        .get_sync_state(P, ObjectType::Contacts, id)
        .await
        .unwrap()
        .unwrap();
    let base = state.base.unwrap();
    assert_eq!(
        base.get("first_name"),
        &json!("B"),
        "the inbound change stays"
    );
    assert_eq!(
        base.get("title"),
        &json!("T1"),
        "the written field is taken"
    );
    assert_eq!(state.base_ts.get("first_name"), Some(&3_000));
    assert_eq!(state.base_ts.get("title"), Some(&5_000));
}

pub async fn apply_is_refused_when_its_record_changed_since_the_plan(h: Harness) {
    let id = create_synced(&h, 910, &[("title", json!("A"))]).await;
    let row = h
        .store
        .get_record(P, ObjectType::Contacts, id)
        .await
        .unwrap()
        .unwrap();
    let sync = h
        .store
        .get_sync_state(P, ObjectType::Contacts, id)
        .await
        .unwrap();
    let unchanged = ApplyOp::Require(Precondition::Unchanged {
        object_type: ObjectType::Contacts,
        local_id: id,
        updated_at: row.updated_at,
        sync: sync.clone().map(Box::new),
    });
    let plan = vec![
        unchanged.clone(),
        upsert(Some(id), 910, &[("title", json!("B"))]),
    ];

    // The app writes the row after the plan read it: the whole batch is refused.
    app_set_title(&h, id, "app").await;
    let error = h.store.apply_inbound(P, plan, &[], None).await.unwrap_err();
    assert!(error.is_stale(), "{error}");
    let record = h
        .store
        .get_record(P, ObjectType::Contacts, id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(record.fields.get("title"), &json!("app"));

    // Another apply changed the sync state after the plan read it.
    h.store
        .apply_inbound(
            P,
            vec![upsert(Some(id), 910, &[("title", json!("C"))])],
            &[],
            None,
        )
        .await
        .unwrap();
    let row = h
        .store
        .get_record(P, ObjectType::Contacts, id)
        .await
        .unwrap()
        .unwrap();
    let stale_sync = ApplyOp::Require(Precondition::Unchanged {
        object_type: ObjectType::Contacts,
        local_id: id,
        updated_at: row.updated_at,
        sync: sync.map(Box::new),
    });
    let error = h
        .store
        .apply_inbound(
            P,
            vec![stale_sync, upsert(Some(id), 910, &[("title", json!("D"))])],
            &[],
            None,
        )
        .await
        .unwrap_err();
    assert!(error.is_stale(), "{error}");

    // A plan made on the current state applies.
    let current = ApplyOp::Require(Precondition::Unchanged {
        object_type: ObjectType::Contacts,
        local_id: id,
        updated_at: row.updated_at,
        sync: h
            .store
            .get_sync_state(P, ObjectType::Contacts, id)
            .await
            .unwrap()
            .map(Box::new),
    });
    h.store
        .apply_inbound(
            P,
            vec![current, upsert(Some(id), 910, &[("title", json!("D"))])],
            &[],
            None,
        )
        .await
        .unwrap();
    let record = h
        .store
        .get_record(P, ObjectType::Contacts, id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(record.fields.get("title"), &json!("D"));

    // A create planned while no row held the id is refused once one does; checked against the
    // state before the batch, so a batch that merges a row onto the id first still applies.
    let no_row = ApplyOp::Require(Precondition::NoRow {
        object_type: ObjectType::Contacts,
        hubspot_id: HubspotId(910),
    });
    let error = h
        .store
        .apply_inbound(
            P,
            vec![no_row, upsert(None, 910, &[("title", json!("E"))])],
            &[],
            None,
        )
        .await
        .unwrap_err();
    assert!(error.is_stale(), "{error}");
    let fresh_id = ApplyOp::Require(Precondition::NoRow {
        object_type: ObjectType::Contacts,
        hubspot_id: HubspotId(911),
    });
    h.store
        .apply_inbound(
            P,
            vec![fresh_id, upsert(None, 911, &[("title", json!("F"))])],
            &[],
            None,
        )
        .await
        .unwrap();
    assert!(
        h.store
            .find_by_hubspot_id(P, ObjectType::Contacts, HubspotId(911))
            .await
            .unwrap()
            .is_some()
    );
}

pub async fn inbound_delete_soft_deletes_the_row(h: Harness) {
    let id = create_synced(&h, 400, &[("first_name", json!("Gone"))]).await;
    app_set_title(&h, id, "edited").await;
    h.store
        .apply_inbound(
            P,
            vec![ApplyOp::Delete {
                object_type: ObjectType::Contacts,
                hubspot_id: HubspotId(400),
            }],
            &[],
            None,
        )
        .await
        .unwrap();
    let record = h
        .store
        .get_record(P, ObjectType::Contacts, id)
        .await
        .unwrap()
        .unwrap();
    assert!(record.deleted);
    assert_eq!(
        record.fields.get("first_name"),
        &json!("Gone"),
        "fields are kept"
    );
    assert_eq!(
        outbox_depth(&h).await,
        0,
        "pending pushes of the deleted record are dropped"
    );
    assert!(
        h.store
            .get_sync_state(P, ObjectType::Contacts, id)
            .await
            .unwrap()
            .is_none()
    );
}

pub async fn merge_aliases_old_ids_to_the_survivor(h: Harness) {
    let survivor = create_synced(&h, 100, &[("first_name", json!("Survivor"))]).await;
    let merged = create_synced(&h, 200, &[("first_name", json!("Merged"))]).await;
    let result = h
        .store
        .apply_inbound(
            P,
            vec![ApplyOp::Merge {
                object_type: ObjectType::Contacts,
                survivor: HubspotId(100),
                merged: vec![HubspotId(200)],
            }],
            &[],
            None,
        )
        .await
        .unwrap();
    assert_eq!(result.local_ids, vec![Some(survivor)]);
    let resolved = h
        .store
        .resolve_alias(P, ObjectType::Contacts, HubspotId(200))
        .await
        .unwrap();
    assert_eq!(resolved, HubspotId(100));
    let found = h
        .store
        .find_by_hubspot_id(P, ObjectType::Contacts, HubspotId(200))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.local_id, survivor);
    let retired = h
        .store
        .get_record(P, ObjectType::Contacts, merged)
        .await
        .unwrap()
        .unwrap();
    assert!(retired.deleted);
    assert_eq!(
        retired.fields.get("first_name"),
        &json!("Merged"),
        "the retired row keeps its fields"
    );
    assert_eq!(outbox_depth(&h).await, 0);

    // A later merge of the survivor carries the old alias along.
    h.store
        .apply_inbound(
            P,
            vec![ApplyOp::Merge {
                object_type: ObjectType::Contacts,
                survivor: HubspotId(150),
                merged: vec![HubspotId(100)],
            }],
            &[],
            None,
        )
        .await
        .unwrap();
    assert_eq!(
        h.store
            .resolve_alias(P, ObjectType::Contacts, HubspotId(200))
            .await
            .unwrap(),
        HubspotId(150)
    );
    let found = h
        .store
        .find_by_hubspot_id(P, ObjectType::Contacts, HubspotId(200))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        found.local_id, survivor,
        "re-pointed to the newest survivor"
    );
    assert_eq!(found.hubspot_id, Some(HubspotId(150)));
    // An inbound event for a merged id updates the survivor's row.
    let out = h
        .store
        .apply_inbound(
            P,
            vec![upsert(None, 200, &[("title", json!("T"))])],
            &[],
            None,
        )
        .await
        .unwrap();
    assert_eq!(out.local_ids, vec![Some(survivor)]);
}

pub async fn merge_repoints_a_local_row_when_the_survivor_has_none(h: Harness) {
    let local = create_synced(&h, 300, &[("first_name", json!("Only"))]).await;
    h.store
        .apply_inbound(
            P,
            vec![ApplyOp::Merge {
                object_type: ObjectType::Contacts,
                survivor: HubspotId(400),
                merged: vec![HubspotId(300)],
            }],
            &[],
            None,
        )
        .await
        .unwrap();
    let record = h
        .store
        .get_record(P, ObjectType::Contacts, local)
        .await
        .unwrap()
        .unwrap();
    assert!(!record.deleted);
    assert_eq!(record.hubspot_id, Some(HubspotId(400)));
    let state = h
        .store
        .get_sync_state_by_hubspot_id(P, ObjectType::Contacts, HubspotId(300))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (state.local_id, state.hubspot_id),
        (local, Some(HubspotId(400)))
    );
    assert_eq!(outbox_depth(&h).await, 0);
}

pub async fn conflicts_are_recorded_and_listed_newest_first(h: Harness) {
    let id = create_synced(&h, 10, &[("title", json!("base"))]).await;
    let conflict = |field: &str, winner: Side| Conflict {
        field: field.into(),
        base: json!("base"),
        local: json!("local"),
        local_ts: 5,
        remote: json!(["remote"]),
        remote_ts: 6,
        policy: ConflictPolicy::LatestWins,
        winner,
    };
    let ops = vec![
        ApplyOp::Conflicts {
            object_type: ObjectType::Contacts,
            local_id: Some(id),
            hubspot_id: Some(HubspotId(10)),
            conflicts: vec![
                conflict("title", Side::Remote),
                conflict("last_name", Side::Local),
            ],
        },
        ApplyOp::Counter {
            name: "conflicts".into(),
            delta: 2,
        },
    ];
    h.store.apply_inbound(P, ops, &[], None).await.unwrap();
    let listed = h.store.list_conflicts(P, None, 10).await.unwrap();
    assert_eq!(listed.len(), 2);
    assert_eq!(
        listed[0].conflict,
        conflict("last_name", Side::Local),
        "newest first"
    );
    assert_eq!(listed[1].conflict, conflict("title", Side::Remote));
    assert_eq!(
        (listed[1].local_id, listed[1].hubspot_id),
        (Some(id), Some(HubspotId(10)))
    );
    let older = h
        .store
        .list_conflicts(P, Some(listed[0].id), 10)
        .await
        .unwrap();
    assert_eq!(older.len(), 1);
    assert_eq!(
        h.store.counters(P).await.unwrap().get("conflicts"),
        Some(&2)
    );
    assert_eq!(h.store.queue_depths(P).await.unwrap().conflicts, 2);
}

pub async fn cursors_counters_and_queue_depths(h: Harness) {
    assert_eq!(h.store.get_cursor(P, "contacts.walk").await.unwrap(), None);
    h.store
        .set_cursor(P, "contacts.walk", "1700000000000", None)
        .await
        .unwrap();
    h.store
        .set_cursor(P, "contacts.walk", "1700000000500", None)
        .await
        .unwrap();
    assert_eq!(
        h.store
            .get_cursor(P, "contacts.walk")
            .await
            .unwrap()
            .as_deref(),
        Some("1700000000500")
    );
    assert_eq!(
        h.store.get_cursor(OTHER, "contacts.walk").await.unwrap(),
        None
    );
    // A cursor advances in the same transaction as the work it covers.
    h.store
        .apply_inbound(
            P,
            vec![ApplyOp::SetCursor {
                name: "deals.walk".into(),
                value: "9".into(),
            }],
            &[],
            None,
        )
        .await
        .unwrap();
    assert_eq!(
        h.store
            .get_cursor(P, "deals.walk")
            .await
            .unwrap()
            .as_deref(),
        Some("9")
    );

    h.store
        .add_counter(P, "echo.change_source", 2)
        .await
        .unwrap();
    h.store
        .add_counter(P, "echo.change_source", 3)
        .await
        .unwrap();
    h.store.add_counter(P, "repairs", 1).await.unwrap();
    let counters = h.store.counters(P).await.unwrap();
    assert_eq!(
        counters,
        BTreeMap::from([("echo.change_source".into(), 5), ("repairs".into(), 1)])
    );

    app_insert_contact(&h, "A", "a@example.com").await;
    h.store.insert_inbox(&[event(1, None, 1, 1)]).await.unwrap();
    let depths = h.store.queue_depths(P).await.unwrap();
    assert_eq!(
        depths,
        QueueDepths {
            outbox: 1,
            inbox: 1,
            dead_letters: 0,
            conflicts: 0
        }
    );
    assert_eq!(
        h.store.portals_with_pending_outbox().await.unwrap(),
        vec![P]
    );
}

// ----- records ----------------------------------------------------------------------------

pub async fn records_roundtrip_through_the_unified_model(h: Harness) {
    let company = fields(&[
        ("name", json!("Acme")),
        ("domain", json!("acme.test")),
        (
            "address",
            json!({"street": "1 Main St", "city": "Springfield", "country": "US"}),
        ),
        ("employee_count", json!(120)),
        ("annual_revenue", json!(1_500_000.5)),
        ("custom_fields.arr__c", json!("5")),
        ("custom_fields.score", json!(7)),
    ]);
    let c = h
        .store
        .insert_record(P, ObjectType::Companies, &company)
        .await
        .unwrap();
    assert_eq!(c.fields, company);
    assert!(!c.deleted);

    let deal = fields(&[
        ("name", json!("Big deal")),
        ("amount", json!(2500)),
        ("close_date", json!("2026-12-31")),
        ("company_id", json!(c.local_id.get())),
        ("contact_ids", json!([1, 2])),
    ]);
    let d = h
        .store
        .insert_record(P, ObjectType::Deals, &deal)
        .await
        .unwrap();
    assert_eq!(
        d.fields, deal,
        "an integral amount reads back as an integer"
    );

    let updated = h
        .store
        .update_record(
            P,
            ObjectType::Deals,
            d.local_id,
            &changes(&[("amount", json!("99.5")), ("contact_ids", Value::Null)]),
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(updated.fields.get("amount"), &json!(99.5));
    assert!(
        !updated.fields.contains("contact_ids"),
        "an empty list is no value"
    );

    let bad = h
        .store
        .update_record(
            P,
            ObjectType::Deals,
            d.local_id,
            &changes(&[("amount", json!("lots"))]),
        )
        .await;
    assert!(
        matches!(bad, Err(StoreError::InvalidValue { .. })),
        "{bad:?}"
    );
    let unknown = h
        .store
        .update_record(
            P,
            ObjectType::Deals,
            d.local_id,
            &changes(&[("nope", json!(1))]),
        )
        .await;
    assert!(
        matches!(unknown, Err(StoreError::UnknownField { .. })),
        "{unknown:?}"
    );
    assert!(crate::check_fields(ObjectType::Contacts, [("email_addresses", &json!("x"))]).is_err());

    // The app's own JSON columns read back into the same fields.
    h.app
        .exec(
            "INSERT INTO contacts (portal_id, first_name, email_addresses, phone_numbers, custom_fields) \
             VALUES ($1, 'Raw', '[\"raw@example.com\"]', '[]', '{\"nps\": 9}')",
            vec![p(P)],
        )
        .await;
    let raw = h
        .store
        .list_records(P, ObjectType::Contacts, None, 10, &[])
        .await
        .unwrap();
    assert_eq!(
        raw[0].fields,
        fields(&[
            ("first_name", json!("Raw")),
            ("email_addresses", json!(["raw@example.com"])),
            ("custom_fields.nps", json!(9)),
        ])
    );
    assert!(
        h.store
            .get_records(P, ObjectType::Deals, &[d.local_id, LocalId(999)])
            .await
            .unwrap()
            .len()
            == 1
    );
    assert!(
        h.store
            .delete_record(P, ObjectType::Deals, d.local_id)
            .await
            .unwrap()
    );
    assert!(
        !h.store
            .delete_record(P, ObjectType::Deals, d.local_id)
            .await
            .unwrap()
    );
}

pub async fn list_records_filters_and_pages(h: Harness) {
    let mut ids = Vec::new();
    for i in 0..5 {
        let record = h
            .store
            .insert_record(
                P,
                ObjectType::Contacts,
                &fields(&[
                    ("first_name", json!(format!("Name{i}"))),
                    (
                        "email_addresses",
                        json!([format!("p{i}@example.com"), "shared@example.com"]),
                    ),
                    ("custom_fields.score", json!(i)),
                    (
                        "custom_fields.tier",
                        json!(if i % 2 == 0 { "gold" } else { "silver" }),
                    ),
                ]),
            )
            .await
            .unwrap();
        ids.push(record.local_id);
    }
    h.store
        .insert_record(
            OTHER,
            ObjectType::Contacts,
            &fields(&[("first_name", json!("Elsewhere"))]),
        )
        .await
        .unwrap();
    h.store
        .delete_record(P, ObjectType::Contacts, ids[4])
        .await
        .unwrap();

    let list = |filters: Vec<Filter>| {
        let store = h.store.clone();
        async move {
            store
                .list_records(P, ObjectType::Contacts, None, 100, &filters)
                .await
                .unwrap()
                .into_iter()
                .map(|r| r.local_id)
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(
        list(vec![]).await,
        ids,
        "scoped by portal, deleted included"
    );
    assert_eq!(
        list(vec![Filter::new(
            "deleted_at",
            FilterOp::IsNull,
            Value::Null
        )])
        .await,
        ids[..4].to_vec()
    );
    assert_eq!(
        list(vec![Filter::new(
            "email_addresses",
            FilterOp::Contains,
            json!("p2@example.com")
        )])
        .await,
        vec![ids[2]]
    );
    assert_eq!(
        list(vec![Filter::new(
            "first_name",
            FilterOp::Eq,
            json!("Name3")
        )])
        .await,
        vec![ids[3]]
    );
    assert_eq!(
        list(vec![Filter::new(
            "first_name",
            FilterOp::Contains,
            json!("name1")
        )])
        .await,
        vec![ids[1]]
    );
    assert_eq!(
        list(vec![Filter::new(
            "first_name",
            FilterOp::In,
            json!(["Name0", "Name4", "x"])
        )])
        .await,
        vec![ids[0], ids[4]]
    );
    assert_eq!(
        list(vec![Filter::new(
            "custom_fields.score",
            FilterOp::Gte,
            json!(3)
        )])
        .await,
        ids[3..].to_vec()
    );
    assert_eq!(
        list(vec![
            Filter::new("custom_fields.tier", FilterOp::Eq, json!("gold")),
            Filter::new("custom_fields.score", FilterOp::Lt, json!(4)),
        ])
        .await,
        vec![ids[0], ids[2]]
    );
    assert_eq!(
        list(vec![Filter::new(
            "custom_fields.missing",
            FilterOp::NotNull,
            Value::Null
        )])
        .await,
        vec![]
    );
    assert_eq!(
        list(vec![Filter::new("title", FilterOp::IsNull, Value::Null)]).await,
        ids
    );
    assert_eq!(
        list(vec![Filter::new("id", FilterOp::Gt, json!(ids[3].get()))]).await,
        vec![ids[4]]
    );

    let page = h
        .store
        .list_records(P, ObjectType::Contacts, Some(ids[1]), 2, &[])
        .await
        .unwrap();
    assert_eq!(
        page.iter().map(|r| r.local_id).collect::<Vec<_>>(),
        vec![ids[2], ids[3]]
    );
    let gold = [Filter::new(
        "custom_fields.tier",
        FilterOp::Eq,
        json!("gold"),
    )];
    assert_eq!(
        h.store
            .count_records(P, ObjectType::Contacts, &gold)
            .await
            .unwrap(),
        3
    );

    // Field names are checked against the columns; values never reach the SQL text.
    let unknown = h
        .store
        .list_records(
            P,
            ObjectType::Contacts,
            None,
            10,
            &[Filter::new(
                "1=1; DROP TABLE contacts",
                FilterOp::Eq,
                json!(1),
            )],
        )
        .await;
    assert!(matches!(unknown, Err(StoreError::UnknownField { .. })));
    let hostile = list(vec![Filter::new(
        "first_name",
        FilterOp::Eq,
        json!("x' OR '1'='1"),
    )])
    .await;
    assert!(hostile.is_empty());
    let bad = h
        .store
        .list_records(
            P,
            ObjectType::Contacts,
            None,
            10,
            &[Filter::new("email_addresses", FilterOp::Lt, json!(1))],
        )
        .await;
    assert!(matches!(bad, Err(StoreError::InvalidFilter { .. })));
}

pub async fn find_by_key_matches_any_email_ignoring_case(h: Harness) {
    let a = h
        .store
        .insert_record(
            P,
            ObjectType::Contacts,
            &fields(&[("email_addresses", json!(["first@x.test", "Second@X.test"]))]),
        )
        .await
        .unwrap();
    let found = h
        .store
        .find_by_key(
            P,
            ObjectType::Contacts,
            "email_addresses",
            &json!("second@x.TEST"),
        )
        .await
        .unwrap();
    assert_eq!(
        found.iter().map(|r| r.local_id).collect::<Vec<_>>(),
        vec![a.local_id]
    );
    assert!(
        h.store
            .find_by_key(
                OTHER,
                ObjectType::Contacts,
                "email_addresses",
                &json!("first@x.test")
            )
            .await
            .unwrap()
            .is_empty()
    );

    let c = h
        .store
        .insert_record(
            P,
            ObjectType::Companies,
            &fields(&[("name", json!("Acme")), ("domain", json!("acme.test"))]),
        )
        .await
        .unwrap();
    let found = h
        .store
        .find_by_key(P, ObjectType::Companies, "domain", &json!("ACME.test"))
        .await
        .unwrap();
    assert_eq!(
        found.iter().map(|r| r.local_id).collect::<Vec<_>>(),
        vec![c.local_id]
    );
    h.store
        .delete_record(P, ObjectType::Companies, c.local_id)
        .await
        .unwrap();
    assert!(
        h.store
            .find_by_key(P, ObjectType::Companies, "domain", &json!("acme.test"))
            .await
            .unwrap()
            .is_empty(),
        "deleted rows never link"
    );
}

pub async fn ensure_hubsync_id_is_generated_once(h: Harness) {
    let a = app_insert_contact(&h, "A", "a@example.com").await;
    let first = h
        .store
        .ensure_hubsync_id(P, ObjectType::Contacts, a)
        .await
        .unwrap();
    let second = h
        .store
        .ensure_hubsync_id(P, ObjectType::Contacts, a)
        .await
        .unwrap();
    assert_eq!(first, second, "a retried create reuses the id");
    let b = app_insert_contact(&h, "B", "b@example.com").await;
    assert_ne!(
        h.store
            .ensure_hubsync_id(P, ObjectType::Contacts, b)
            .await
            .unwrap(),
        first
    );
    // The ack keeps it.
    let claims = claim_all(&h, "w").await;
    let acks = claims
        .iter()
        .map(|c| OutboundAck {
            range: c.range(),
            outcome: written(60 + c.local_id.get() as u64, FieldMap::new()),
        })
        .collect();
    h.store.ack_outbound(P, acks, None).await.unwrap();
    let state = h
        .store
        .get_sync_state(P, ObjectType::Contacts, a)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(state.hubsync_id.as_deref(), Some(first.as_str()));
    let states = h
        .store
        .get_sync_states(P, ObjectType::Contacts, &[a, b, LocalId(999)])
        .await
        .unwrap();
    assert_eq!(states.len(), 2);
}

// ----- leases -----------------------------------------------------------------------------

pub async fn leases_fence_out_a_stale_owner(h: Harness) {
    let f1 = h
        .store
        .try_acquire_lease(P, "a", LONG)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        h.store.try_acquire_lease(P, "b", LONG).await.unwrap(),
        None,
        "held by a"
    );
    assert!(h.store.renew_lease(P, "a", f1, LONG).await.unwrap());
    assert!(!h.store.renew_lease(P, "b", f1, LONG).await.unwrap());
    h.store
        .apply_inbound(P, vec![], &[], Some(f1))
        .await
        .unwrap();

    // a stalls past its lease (a renewal for no time at all); b takes over.
    assert!(
        h.store
            .renew_lease(P, "a", f1, Duration::ZERO)
            .await
            .unwrap()
    );
    tokio::time::sleep(Duration::from_millis(5)).await;
    let f2 = h
        .store
        .try_acquire_lease(P, "b", LONG)
        .await
        .unwrap()
        .unwrap();
    assert!(f2 > f1);
    let stale = h
        .store
        .apply_inbound(
            P,
            vec![ApplyOp::Counter {
                name: "x".into(),
                delta: 1,
            }],
            &[],
            Some(f1),
        )
        .await;
    assert!(matches!(stale, Err(StoreError::Fenced { .. })), "{stale:?}");
    let stale_ack = h.store.ack_outbound(P, vec![], Some(f1)).await;
    assert!(matches!(stale_ack, Err(StoreError::Fenced { .. })));
    // Every other write a portal's workers make is fenced too.
    app_insert_contact(&h, "A", "a@example.com").await;
    let claims = claim_all(&h, "b").await;
    let range = claims[0].range();
    let failure = |retry_at| OutboundFailure {
        range,
        reason: "HubSpot 500".into(),
        category: "server".into(),
        retry_at,
        payload: Value::Null,
    };
    let fenced = |r: Result<(), StoreError>| matches!(r, Err(StoreError::Fenced { .. }));
    assert!(fenced(
        h.store
            .fail_outbound(P, vec![failure(None)], Some(f1))
            .await
    ));
    assert!(fenced(
        h.store
            .fail_outbound(P, vec![failure(Some(now_ms()))], Some(f1))
            .await
    ));
    assert!(fenced(h.store.release_outbox(P, &[range], Some(f1)).await));
    assert!(fenced(h.store.release_inbox(P, &[1], Some(f1)).await));
    let inbox_failure = InboxFailure {
        id: 1,
        reason: "mapping failed".into(),
        category: "mapping".into(),
        retry_at: None,
    };
    assert!(fenced(
        h.store
            .fail_inbox(P, vec![inbox_failure.clone()], Some(f1))
            .await
    ));
    assert!(fenced(
        h.store.set_cursor(P, "contacts.walk", "1", Some(f1)).await
    ));
    let letter = NewDeadLetter {
        source: DeadLetterSource::Capture,
        object_type: Some(ObjectType::Contacts),
        local_id: None,
        hubspot_id: None,
        reason: "stale".into(),
        category: "mapping".into(),
        payload: Value::Null,
        attempts: 0,
    };
    assert!(matches!(
        h.store.add_dead_letter_fenced(P, &letter, Some(f1)).await,
        Err(StoreError::Fenced { .. })
    ));
    let depths = h.store.queue_depths(P).await.unwrap();
    assert_eq!(
        (depths.outbox, depths.dead_letters),
        (1, 0),
        "the fenced writes left nothing"
    );
    assert!(claim_all(&h, "b").await.is_empty(), "still claimed by b");
    assert_eq!(h.store.get_cursor(P, "contacts.walk").await.unwrap(), None);
    // The current owner's writes go through.
    h.store
        .set_cursor(P, "contacts.walk", "2", Some(f2))
        .await
        .unwrap();
    h.store.release_outbox(P, &[range], Some(f2)).await.unwrap();
    h.store.release_inbox(P, &[1], Some(f2)).await.unwrap();
    h.store
        .fail_inbox(P, vec![inbox_failure], Some(f2))
        .await
        .unwrap();
    h.store
        .fail_outbound(P, vec![failure(Some(now_ms()))], Some(f2))
        .await
        .unwrap();
    h.store
        .add_dead_letter_fenced(P, &letter, Some(f2))
        .await
        .unwrap();
    assert!(
        h.store.counters(P).await.unwrap().is_empty(),
        "the fenced write left nothing"
    );
    assert!(!h.store.renew_lease(P, "a", f1, LONG).await.unwrap());
    h.store
        .apply_inbound(P, vec![], &[], Some(f2))
        .await
        .unwrap();

    h.store.release_lease(P, "b", f2).await.unwrap();
    let f3 = h
        .store
        .try_acquire_lease(P, "a", LONG)
        .await
        .unwrap()
        .unwrap();
    assert!(f3 > f2, "fences never go back after a release");
    assert!(
        h.store
            .try_acquire_lease(OTHER, "b", LONG)
            .await
            .unwrap()
            .is_some(),
        "per portal"
    );
}

/// PostgreSQL: a transaction holding a fenced write open does not delay the portal's lease
/// renewal, but a takeover waits for it (so no fenced write commits after a takeover).
pub async fn lease_renewals_do_not_wait_for_fenced_writes(h: Harness) {
    use crate::db::{Backend, Sql};
    let super::AppDb::Postgres(db) = &h.app else {
        return; // SQLite: one writer, one process.
    };
    let f1 = h
        .store
        .try_acquire_lease(P, "a", LONG)
        .await
        .unwrap()
        .unwrap();
    // What a fenced write holds until it commits.
    let mut tx = db.begin().await.unwrap();
    let rows = crate::db::PgDb::fetch(
        &mut tx,
        Sql::Static("SELECT fence FROM leases WHERE portal_id = $1 FOR KEY SHARE"),
        vec![p(P)],
    )
    .await
    .unwrap();
    assert_eq!(rows.len(), 1);
    let renewed = tokio::time::timeout(
        Duration::from_secs(2),
        h.store.renew_lease(P, "a", f1, Duration::ZERO),
    )
    .await
    .expect("a renewal does not wait for a fenced write");
    assert!(renewed.unwrap());
    tokio::time::sleep(Duration::from_millis(5)).await;
    // The lease has expired; b's takeover waits for the fenced write to commit.
    let store = std::sync::Arc::clone(&h.store);
    let takeover = tokio::spawn(async move { store.try_acquire_lease(P, "b", LONG).await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!takeover.is_finished(), "the takeover waits");
    crate::db::PgDb::commit(tx).await.unwrap();
    let f2 = takeover.await.unwrap().unwrap().unwrap();
    assert!(f2 > f1);
}

// ----- app webhooks, portals, keys --------------------------------------------------------

pub async fn app_webhook_deliveries_are_durable(h: Harness) {
    let endpoint = h
        .store
        .add_app_endpoint(P, "http://127.0.0.1:9/hook", "s3cret")
        .await
        .unwrap();
    assert!(
        !format!("{endpoint:?}").contains("s3cret"),
        "secrets stay out of logs"
    );
    h.store
        .add_app_endpoint(OTHER, "http://127.0.0.1:9/other", "x")
        .await
        .unwrap();
    h.store
        .apply_inbound(
            P,
            vec![ApplyOp::NotifyApp {
                payload: json!({"type": "contact.updated", "id": 1}),
            }],
            &[],
            None,
        )
        .await
        .unwrap();
    let claimed = h.store.claim_app_deliveries(10, SHORT).await.unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].endpoint, endpoint);
    assert_eq!(claimed[0].payload["type"], json!("contact.updated"));
    assert!(
        h.store
            .claim_app_deliveries(10, LONG)
            .await
            .unwrap()
            .is_empty(),
        "leased"
    );

    h.store
        .retry_app_delivery(claimed[0].id, now_ms() - 1)
        .await
        .unwrap();
    let again = h.store.claim_app_deliveries(10, LONG).await.unwrap();
    assert_eq!((again.len(), again[0].attempts), (1, 1));
    h.store.complete_app_delivery(again[0].id).await.unwrap();
    tokio::time::sleep(SHORT_EXPIRED).await;
    assert!(
        h.store
            .claim_app_deliveries(10, LONG)
            .await
            .unwrap()
            .is_empty(),
        "delivered"
    );

    assert_eq!(
        h.store
            .enqueue_app_event(P, &json!({"n": 2}))
            .await
            .unwrap(),
        1
    );
    assert!(h.store.remove_app_endpoint(P, endpoint.id).await.unwrap());
    assert!(h.store.list_app_endpoints(P).await.unwrap().is_empty());
    assert!(
        h.store
            .claim_app_deliveries(10, LONG)
            .await
            .unwrap()
            .is_empty(),
        "removed with its endpoint"
    );
}

pub async fn portals_and_api_keys(h: Harness) {
    let portal = Portal {
        portal_id: P,
        name: "Acme".into(),
        app_id: Some(hubsync_core::AppId(55)),
        auth: PortalAuth(json!({"kind": "private", "token": "pat-secret"})),
        status: PortalStatus::Active,
        status_reason: None,
        config: json!({"tier": "professional"}),
        created_at: 1,
    };
    assert!(
        !format!("{portal:?}").contains("pat-secret"),
        "tokens stay out of logs"
    );
    h.store.upsert_portal(&portal).await.unwrap();
    assert_eq!(h.store.get_portal(P).await.unwrap(), Some(portal.clone()));
    assert!(
        h.store
            .set_portal_status(P, PortalStatus::NeedsReauth, Some("401 from HubSpot"))
            .await
            .unwrap()
    );
    assert!(
        h.store
            .set_portal_auth(P, &PortalAuth(json!({"kind": "oauth"})))
            .await
            .unwrap()
    );
    assert!(
        !h.store
            .set_portal_status(OTHER, PortalStatus::Parked, None)
            .await
            .unwrap()
    );
    let renamed = Portal {
        name: "Acme Inc".into(),
        ..portal.clone()
    };
    h.store.upsert_portal(&renamed).await.unwrap();
    let stored = h.store.get_portal(P).await.unwrap().unwrap();
    assert_eq!(
        stored.status,
        PortalStatus::NeedsReauth,
        "an upsert keeps the status"
    );
    assert_eq!(stored.status_reason.as_deref(), Some("401 from HubSpot"));
    assert_eq!(stored.name, "Acme Inc");
    assert_eq!(h.store.list_portals().await.unwrap().len(), 1);

    let key = h
        .store
        .create_api_key("ci", "ab12", &[P, OTHER])
        .await
        .unwrap();
    assert_eq!(
        h.store.find_api_key("ab12").await.unwrap(),
        Some(key.clone())
    );
    assert_eq!(h.store.find_api_key("nope").await.unwrap(), None);
    assert_eq!(h.store.list_api_keys().await.unwrap(), vec![key.clone()]);
    assert!(h.store.revoke_api_key(key.id).await.unwrap());
    assert!(h.store.list_api_keys().await.unwrap().is_empty());

    app_insert_contact(&h, "A", "a@example.com").await;
    assert!(h.store.delete_portal(P).await.unwrap());
    assert_eq!(h.store.get_portal(P).await.unwrap(), None);
    assert_eq!(
        h.store
            .count_records(P, ObjectType::Contacts, &[])
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        h.store.queue_depths(P).await.unwrap(),
        QueueDepths::default(),
        "and captures nothing"
    );
}

pub async fn migrations_rerun_on_an_existing_database(h: Harness) {
    let id = app_insert_contact(&h, "Kept", "kept@example.com").await;
    let second = h.reopen().await;
    let record = second
        .get_record(P, ObjectType::Contacts, id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        record.fields.get("first_name"),
        &json!("Kept"),
        "nothing wiped"
    );
    assert_eq!(second.queue_depths(P).await.unwrap().outbox, 1);
    second.close().await;
}

pub async fn records_written_through_the_store_are_captured(h: Harness) {
    let record = h
        .store
        .insert_record(
            P,
            ObjectType::Contacts,
            &fields(&[("first_name", json!("Api"))]),
        )
        .await
        .unwrap();
    h.store
        .update_record(
            P,
            ObjectType::Contacts,
            record.local_id,
            &changes(&[("custom_fields.x", json!(1))]),
        )
        .await
        .unwrap();
    h.store
        .delete_record(P, ObjectType::Contacts, record.local_id)
        .await
        .unwrap();
    let claims = claim_all(&h, "w").await;
    assert_eq!(claims.len(), 1);
    assert_eq!((claims[0].items, claims[0].op), (3, OutboxOp::Delete));
}

pub async fn malformed_app_json_is_readable_for_dead_lettering(h: Harness) {
    // The app writes an email list that is not a list; its write is not rejected.
    h.app
        .exec(
            "INSERT INTO contacts (portal_id, first_name, email_addresses) VALUES ($1, 'Bad', '\"a@x.test\"')",
            vec![p(P)],
        )
        .await;
    app_insert_contact(&h, "Good", "good@x.test").await;
    let claims = claim_all(&h, "w").await;
    assert_eq!(claims.len(), 2, "both writes are captured");
    let ids: Vec<LocalId> = claims.iter().map(|c| c.local_id).collect();
    let records = h
        .store
        .get_records(P, ObjectType::Contacts, &ids)
        .await
        .unwrap();
    assert_eq!(records.len(), 2, "one bad row does not fail the batch");
    assert_eq!(records[0].fields.get("email_addresses"), &json!("a@x.test"));
    assert_eq!(
        records[1].fields.get("email_addresses"),
        &json!(["good@x.test"])
    );
    // Nor does it break lookups and filters over the others.
    let found = h
        .store
        .find_by_key(
            P,
            ObjectType::Contacts,
            "email_addresses",
            &json!("good@x.test"),
        )
        .await
        .unwrap();
    assert_eq!(found.len(), 1);
    let empty = [Filter::new(
        "email_addresses",
        FilterOp::IsNull,
        Value::Null,
    )];
    assert_eq!(
        h.store
            .count_records(P, ObjectType::Contacts, &empty)
            .await
            .unwrap(),
        0
    );
    if h.store.backend() == "sqlite" {
        // Only SQLite lets the app store text that is not JSON at all.
        h.app
            .exec(
                "INSERT INTO contacts (portal_id, email_addresses) VALUES ($1, 'not json')",
                vec![p(P)],
            )
            .await;
        let contains = [Filter::new(
            "email_addresses",
            FilterOp::Contains,
            json!("good@x.test"),
        )];
        assert_eq!(
            h.store
                .count_records(P, ObjectType::Contacts, &contains)
                .await
                .unwrap(),
            1
        );
        let all = h
            .store
            .list_records(P, ObjectType::Contacts, None, 10, &[])
            .await
            .unwrap();
        assert_eq!(all[2].fields.get("email_addresses"), &json!("not json"));
    }
}

pub async fn a_capture_wakes_a_waiting_worker(h: Harness) {
    if h.store.backend() == "sqlite" {
        // No cross-process notification on SQLite: the wait is a poll interval.
        let woken = h
            .store
            .wait_for_outbox(Duration::from_millis(20))
            .await
            .unwrap();
        assert!(!woken);
        return;
    }
    // Start listening, then let the app write while the worker waits.
    assert!(
        !h.store
            .wait_for_outbox(Duration::from_millis(50))
            .await
            .unwrap()
    );
    let store = h.store.clone();
    let waiter = tokio::spawn(async move { store.wait_for_outbox(LONG).await });
    tokio::time::sleep(Duration::from_millis(50)).await;
    app_insert_contact(&h, "A", "a@example.com").await;
    let woken = tokio::time::timeout(Duration::from_secs(10), waiter)
        .await
        .expect("woken before the timeout")
        .unwrap()
        .unwrap();
    assert!(woken);
}

fn now_ms() -> Millis {
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    i64::try_from(since.as_millis()).unwrap()
}

pub async fn plain_sql_writes_without_timestamps_get_them_and_are_captured_once(h: Harness) {
    let before = now_ms();
    h.app
        .exec(
            "INSERT INTO contacts (portal_id, first_name, email_addresses) \
             VALUES (7, 'Zed', '[\"zed@x.example\"]')",
            Vec::new(),
        )
        .await;
    let found = h
        .store
        .find_by_key(
            P,
            ObjectType::Contacts,
            "email_addresses",
            &json!("zed@x.example"),
        )
        .await
        .unwrap();
    let inserted = found.first().expect("inserted").clone();
    assert!(inserted.created_at >= before - 5, "created_at is now");
    // Each default reads the clock on its own (PostgreSQL: clock_timestamp), so they may differ
    // by a millisecond.
    assert!(
        (inserted.updated_at - inserted.created_at).abs() <= 1000,
        "updated_at set with created_at: {} vs {}",
        inserted.updated_at,
        inserted.created_at
    );
    assert_eq!(
        h.store.queue_depths(P).await.unwrap().outbox,
        1,
        "insert captured once"
    );

    h.app
        .exec(
            "UPDATE contacts SET first_name = 'Zed2' WHERE portal_id = 7",
            Vec::new(),
        )
        .await;
    let updated = h
        .store
        .get_record(P, ObjectType::Contacts, inserted.local_id)
        .await
        .unwrap()
        .unwrap();
    assert!(
        updated.updated_at > inserted.updated_at,
        "update bumps updated_at"
    );
    assert_eq!(updated.created_at, inserted.created_at);
    assert_eq!(updated.fields.get("first_name"), &json!("Zed2"));
    let outbox: i64 = match &h.app {
        super::AppDb::Sqlite(db) => sqlx::query_scalar("SELECT count(*) FROM outbox")
            .fetch_one(&db.pool)
            .await
            .unwrap(),
        super::AppDb::Postgres(db) => sqlx::query_scalar("SELECT count(*) FROM outbox")
            .fetch_one(&db.pool)
            .await
            .unwrap(),
    };
    assert_eq!(outbox, 2, "the update is captured exactly once");
}

async fn listed(h: &Harness, object_type: ObjectType, filter: Filter) -> Vec<LocalRecord> {
    h.store
        .list_records(P, object_type, None, 100, &[filter])
        .await
        .unwrap()
}

pub async fn numeric_filters_on_custom_fields_compare_numbers(h: Harness) {
    h.app
        .exec(
            "INSERT INTO companies (portal_id, name, custom_fields) VALUES \
             (7, 'small-text', '{\"arr__c\": \"9000\"}'), \
             (7, 'big-text', '{\"arr__c\": \"60000\"}'), \
             (7, 'big-number', '{\"arr__c\": 75000.5}'), \
             (7, 'small-number', '{\"arr__c\": 100}'), \
             (7, 'garbage', '{\"arr__c\": \"lots\"}'), \
             (7, 'missing', '{}')",
            Vec::new(),
        )
        .await;
    let names = |records: Vec<LocalRecord>| -> Vec<String> {
        records
            .iter()
            .map(|r| r.fields.get("name").as_str().unwrap_or_default().to_owned())
            .collect()
    };
    let gte = Filter::new("custom_fields.arr__c", FilterOp::Gte, json!(50000));
    assert_eq!(
        names(listed(&h, ObjectType::Companies, gte).await),
        ["big-text", "big-number"]
    );
    let lt = Filter::new("custom_fields.arr__c", FilterOp::Lt, json!(10000));
    assert_eq!(
        names(listed(&h, ObjectType::Companies, lt).await),
        ["small-text", "small-number"],
        "a non-numeric value matches no numeric comparison"
    );
    let eq = Filter::new("custom_fields.arr__c", FilterOp::Eq, json!(60000));
    assert_eq!(
        names(listed(&h, ObjectType::Companies, eq).await),
        ["big-text"]
    );
    let text = Filter::new("custom_fields.arr__c", FilterOp::Eq, json!("lots"));
    assert_eq!(
        names(listed(&h, ObjectType::Companies, text).await),
        ["garbage"]
    );
}

pub async fn email_and_text_filters_ignore_case(h: Harness) {
    let id = app_insert_contact(&h, "Ann", "Ann.Lee@Example.com").await;
    let contains = Filter::new(
        "email_addresses",
        FilterOp::Contains,
        json!("ann.lee@example.COM"),
    );
    let found = listed(&h, ObjectType::Contacts, contains).await;
    assert_eq!(found.iter().map(|r| r.local_id).collect::<Vec<_>>(), [id]);
    let eq = Filter::new("first_name", FilterOp::Eq, json!("ANN"));
    let found = listed(&h, ObjectType::Contacts, eq).await;
    assert_eq!(found.iter().map(|r| r.local_id).collect::<Vec<_>>(), [id]);
    let neq = Filter::new("first_name", FilterOp::Neq, json!("ann"));
    assert!(listed(&h, ObjectType::Contacts, neq).await.is_empty());
    let other = Filter::new(
        "email_addresses",
        FilterOp::Contains,
        json!("lee@example.com"),
    );
    assert!(
        listed(&h, ObjectType::Contacts, other).await.is_empty(),
        "a list holds whole values, not substrings"
    );
}

pub async fn records_load_with_their_sync_states(h: Harness) {
    let synced = create_synced(&h, 501, &[("first_name", json!("Synced"))]).await;
    let local = app_insert_contact(&h, "Local", "local@example.com").await;
    let missing = LocalId(999_999);
    let ids = [local, missing, synced];
    let loaded = h
        .store
        .get_records_with_sync_states(P, ObjectType::Contacts, &ids)
        .await
        .unwrap();
    let records = h
        .store
        .get_records(P, ObjectType::Contacts, &ids)
        .await
        .unwrap();
    let states = h
        .store
        .get_sync_states(P, ObjectType::Contacts, &ids)
        .await
        .unwrap();
    assert_eq!(
        loaded.iter().map(|(r, _)| r.clone()).collect::<Vec<_>>(),
        records,
        "the same records, in id order, missing ids skipped"
    );
    let by_id: BTreeMap<LocalId, Option<SyncState>> =
        loaded.into_iter().map(|(r, s)| (r.local_id, s)).collect();
    assert_eq!(by_id[&synced].as_ref(), states.first());
    assert_eq!(
        by_id[&synced].as_ref().unwrap().hubspot_id,
        Some(HubspotId(501))
    );
    assert_eq!(by_id[&local], None, "a record never synced has no state");
}
