//! Webhook delivery over real HTTP, verified with an implementation of HubSpot's signature
//! formulas written here from the digest (not the emulator's signer).

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use base64::Engine;
use common::*;
use hmac::{KeyInit, Mac};
use hubsync_emulator::{EmulatorConfig, Faults, ObjectKind, Settings};
use serde_json::{Value, json};
use sha2::Digest;

/// v3: base64(HMAC-SHA256(secret, method + uri + body + timestamp)).
fn hubspot_v3(secret: &str, method: &str, uri: &str, body: &[u8], ts: &str) -> String {
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    let mut msg = Vec::new();
    msg.extend_from_slice(method.as_bytes());
    msg.extend_from_slice(uri.as_bytes());
    msg.extend_from_slice(body);
    msg.extend_from_slice(ts.as_bytes());
    mac.update(&msg);
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// v1: hex(SHA-256(secret + body)).
fn hubspot_v1(secret: &str, body: &[u8]) -> String {
    let mut h = sha2::Sha256::new();
    h.update(secret.as_bytes());
    h.update(body);
    hex::encode(h.finalize())
}

#[test]
fn test_signer_matches_the_digest_vectors() {
    let body = br#"[{"eventId":531833541,"subscriptionId":3923621,"portalId":48807704,"appId":16111050,"occurredAt":1752613920733,"subscriptionType":"contact.creation","attemptNumber":0,"objectId":138017612137,"changeFlag":"CREATED","changeSource":"CRM_UI","sourceId":"userId:76023669"}]"#;
    assert_eq!(
        hubspot_v3(
            "cfc68c0b-4b4e-4ef8-b764-95350e4ea479",
            "POST",
            "https://webhook.site/335453f5-94b3-49d9-b684-a55354d4b8df",
            body,
            "1752613922216"
        ),
        "gbj1XPRvUt0noT7i7fXfTzOD4sLzQmf0VT28ZYq0EYg="
    );
    let v1 = br#"[{"eventId":1,"subscriptionId":12345,"portalId":62515,"occurredAt":1564113600000,"subscriptionType":"contact.creation","attemptNumber":0,"objectId":123,"changeSource":"CRM","changeFlag":"NEW","appId":54321}]"#;
    assert_eq!(
        hubspot_v1("yyyyyyyy-yyyy-yyyy-yyyy-yyyyyyyyyyyy", v1),
        "232db2615f3d666fe21a8ec971ac7b5402d33b9a925784df3ca654d05f4817de"
    );
}

async fn start_hooked(settings: Settings) -> (hubsync_emulator::EmulatorHandle, Receiver, String) {
    let (url, rx) = receiver().await;
    let mut p = portal();
    p.webhook_target = Some(url.clone());
    let emu = start_with(EmulatorConfig {
        portals: vec![p],
        settings,
        ..EmulatorConfig::default()
    })
    .await;
    (emu, rx, url)
}

#[tokio::test]
async fn deliveries_carry_valid_v1_and_v3_signatures() {
    let (emu, rx, url) = start_hooked(Settings::default()).await;
    let c = Client::new(&emu);
    let r = c
        .post(
            "/crm/v3/objects/contacts",
            json!({"properties": {"email": "a@b.example"}}),
        )
        .await;
    assert_eq!(r.status, 201);
    assert!(emu.admin().wait_webhooks_idle(Duration::from_secs(5)).await);
    let deliveries = rx.deliveries.lock().clone();
    assert!(!deliveries.is_empty());
    for d in &deliveries {
        let h = |n: &str| d.headers.get(n).unwrap().to_str().unwrap().to_owned();
        let ts = h("x-hubspot-request-timestamp");
        assert_eq!(
            h("x-hubspot-signature-v3"),
            hubspot_v3(SECRET, "POST", &url, &d.body, &ts)
        );
        assert_eq!(h("x-hubspot-signature"), hubspot_v1(SECRET, &d.body));
        assert_eq!(h("x-hubspot-signature-version"), "v1");
    }
    let events = rx.events();
    let creation = events
        .iter()
        .find(|e| e["subscriptionType"] == "contact.creation")
        .expect("creation event");
    assert!(creation["objectId"].is_u64(), "objectId is a number");
    assert_eq!(creation["attemptNumber"], 0);
    assert_eq!(creation["changeSource"], "INTEGRATION");
    assert_eq!(creation["sourceId"], APP.to_string());
    assert_eq!(creation["appId"], APP);
    assert_eq!(creation["portalId"], PORTAL);
    assert_eq!(creation["changeFlag"], "CREATED");
    let pc: Vec<&Value> = events
        .iter()
        .filter(|e| e["subscriptionType"] == "contact.propertyChange")
        .collect();
    assert!(
        pc.iter()
            .any(|e| e["propertyName"] == "email" && e["propertyValue"] == "a@b.example")
    );
    emu.shutdown().await;
}

#[tokio::test]
async fn ui_edits_carry_crm_ui_and_user_id() {
    let (emu, rx, _) = start_hooked(Settings::default()).await;
    let admin = emu.admin();
    let id = admin
        .create(PORTAL, ObjectKind::Contact, [("firstname", "Luke")], 42)
        .unwrap();
    admin
        .update(
            PORTAL,
            ObjectKind::Contact,
            id,
            [("firstname", "Lucas")],
            42,
        )
        .unwrap();
    assert!(admin.wait_webhooks_idle(Duration::from_secs(5)).await);
    let events = rx.events();
    let change = events
        .iter()
        .find(|e| e["propertyValue"] == "Lucas")
        .expect("propertyChange");
    assert_eq!(change["changeSource"], "CRM_UI");
    assert_eq!(change["sourceId"], "userId:42");
    assert_eq!(change["objectId"], id);
    emu.shutdown().await;
}

fn fast() -> Settings {
    Settings {
        webhook_time_scale: 0.0001,
        ..Settings::default()
    }
}

async fn idle(emu: &hubsync_emulator::EmulatorHandle) {
    assert!(
        emu.admin()
            .wait_webhooks_idle(Duration::from_secs(10))
            .await,
        "webhooks went idle"
    );
}

#[tokio::test]
async fn failed_delivery_is_retried_with_attempt_number_incremented() {
    let (emu, rx, _) = start_hooked(fast()).await;
    rx.script.lock().extend([500, 404]);
    emu.admin()
        .create(PORTAL, ObjectKind::Contact, [("firstname", "Retry")], 1)
        .unwrap();
    idle(&emu).await;
    let d = rx.deliveries.lock().clone();
    assert_eq!(d.len(), 3, "two failures then success");
    let ids = |i: usize| {
        d[i].events
            .iter()
            .map(|e| e["eventId"].as_u64().unwrap())
            .collect::<Vec<_>>()
    };
    assert_eq!(ids(0), ids(1));
    assert_eq!(ids(1), ids(2));
    for (i, del) in d.iter().enumerate() {
        assert!(del.events.iter().all(|e| e["attemptNumber"] == i as u64));
    }
    let s = emu.admin().stats().portal(PORTAL);
    assert_eq!(s.webhook_deliveries_attempted, 3);
    assert_eq!(s.webhook_deliveries_failed, 2);
    assert_eq!(s.webhook_deliveries_succeeded, 1);
    emu.shutdown().await;
}

#[tokio::test]
async fn slow_answers_count_as_failures_and_retries_stop_after_the_maximum() {
    let settings = Settings {
        webhook_timeout_ms: 100,
        webhook_max_retries: 2,
        ..fast()
    };
    let (emu, rx, _) = start_hooked(settings).await;
    rx.script.lock().extend([0, 500, 500]);
    emu.admin()
        .create(PORTAL, ObjectKind::Company, [("name", "Slow")], 1)
        .unwrap();
    idle(&emu).await;
    let s = emu.admin().stats().portal(PORTAL);
    assert_eq!(s.webhook_deliveries_attempted, 3, "first try + 2 retries");
    assert_eq!(s.webhook_deliveries_failed, 3);
    assert_eq!(s.webhook_batches_abandoned, 1);
    emu.shutdown().await;
}

#[tokio::test]
async fn deliveries_hold_at_most_100_events_and_10_in_flight() {
    let (emu, rx, _) = start_hooked(Settings {
        webhook_max_in_flight: 10,
        ..fast()
    })
    .await;
    rx.delay_ms.store(30, std::sync::atomic::Ordering::SeqCst);
    let c = Client::new(&emu);
    for b in 0..3 {
        let inputs: Vec<Value> = (0..100)
            .map(|i| json!({"properties": {"email": format!("b{b}x{i}@x.example")}}))
            .collect();
        assert_eq!(
            c.post(
                "/crm/v3/objects/contacts/batch/create",
                json!({"inputs": inputs})
            )
            .await
            .status,
            201
        );
    }
    idle(&emu).await;
    let d = rx.deliveries.lock().clone();
    assert!(
        d.iter()
            .all(|x| !x.events.is_empty() && x.events.len() <= 100)
    );
    assert_eq!(
        d.iter().map(|x| x.events.len()).sum::<usize>(),
        600,
        "creation + email propertyChange per contact"
    );
    assert!(rx.max_in_flight.load(std::sync::atomic::Ordering::SeqCst) <= 10);
    emu.shutdown().await;
}

#[tokio::test]
async fn in_flight_limit_is_honoured() {
    let (emu, rx, _) = start_hooked(Settings {
        webhook_max_in_flight: 2,
        webhook_max_batch: 1,
        ..fast()
    })
    .await;
    rx.delay_ms.store(50, std::sync::atomic::Ordering::SeqCst);
    for i in 0..8 {
        emu.admin()
            .create(
                PORTAL,
                ObjectKind::Deal,
                [
                    ("dealname", format!("D{i}")),
                    ("dealstage", "closedwon".into()),
                ],
                1,
            )
            .unwrap();
    }
    idle(&emu).await;
    assert!(rx.deliveries.lock().len() >= 8);
    let max = rx.max_in_flight.load(std::sync::atomic::Ordering::SeqCst);
    assert!((1..=2).contains(&max), "max in flight {max}");
    emu.shutdown().await;
}

#[tokio::test]
async fn drop_fault_drops_and_duplicate_fault_duplicates() {
    let (emu, rx, _) = start_hooked(fast()).await;
    emu.admin().set_faults(Faults {
        webhook_drop_pct: 100.0,
        ..Faults::default()
    });
    emu.admin()
        .create(PORTAL, ObjectKind::Contact, [("firstname", "Dropped")], 1)
        .unwrap();
    idle(&emu).await;
    assert!(rx.deliveries.lock().is_empty());
    assert_eq!(emu.admin().stats().portal(PORTAL).webhook_events_dropped, 2);
    emu.admin().set_faults(Faults {
        webhook_duplicate_pct: 100.0,
        ..Faults::default()
    });
    emu.admin()
        .create(PORTAL, ObjectKind::Contact, [("firstname", "Twice")], 1)
        .unwrap();
    idle(&emu).await;
    let events = rx.events();
    assert_eq!(events.len(), 4);
    let mut ids: Vec<u64> = events
        .iter()
        .map(|e| e["eventId"].as_u64().unwrap())
        .collect();
    ids.sort_unstable();
    assert_eq!(ids[0], ids[1]);
    assert_eq!(ids[2], ids[3]);
    emu.shutdown().await;
}

#[tokio::test]
async fn delay_fault_holds_events_back() {
    let (emu, rx, _) = start_hooked(fast()).await;
    emu.admin().set_faults(Faults {
        webhook_delay_pct: 100.0,
        webhook_delay_ms: 400,
        ..Faults::default()
    });
    emu.admin()
        .create(PORTAL, ObjectKind::Contact, [("firstname", "Later")], 1)
        .unwrap();
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert!(rx.deliveries.lock().is_empty(), "nothing before the delay");
    idle(&emu).await;
    assert_eq!(rx.events().len(), 2);
    emu.shutdown().await;
}

#[tokio::test]
async fn reorder_fault_lets_later_events_overtake() {
    let (emu, rx, _) = start_hooked(fast()).await;
    emu.admin().set_faults(Faults {
        webhook_reorder_pct: 50.0,
        ..Faults::default()
    });
    for i in 0..20 {
        emu.admin()
            .create(PORTAL, ObjectKind::Company, [("name", format!("C{i}"))], 1)
            .unwrap();
    }
    idle(&emu).await;
    let ids: Vec<u64> = rx
        .events()
        .iter()
        .map(|e| e["eventId"].as_u64().unwrap())
        .collect();
    assert_eq!(ids.len(), 40);
    assert!(
        ids.windows(2).any(|w| w[0] > w[1]),
        "some event arrived after a later one: {ids:?}"
    );
    emu.shutdown().await;
}

async fn delivered_ids_with_seed(seed: u64) -> Vec<u64> {
    let (url, rx) = receiver().await;
    let mut p = portal();
    p.webhook_target = Some(url);
    let emu = start_with(EmulatorConfig {
        portals: vec![p],
        settings: fast(),
        seed,
        ..EmulatorConfig::default()
    })
    .await;
    emu.admin().set_faults(Faults {
        webhook_drop_pct: 50.0,
        ..Faults::default()
    });
    for i in 0..30 {
        emu.admin()
            .create(
                PORTAL,
                ObjectKind::Contact,
                [("firstname", format!("S{i}"))],
                1,
            )
            .unwrap();
    }
    idle(&emu).await;
    let mut ids: Vec<u64> = rx
        .events()
        .iter()
        .map(|e| e["eventId"].as_u64().unwrap())
        .collect();
    ids.sort_unstable();
    emu.shutdown().await;
    ids
}

#[tokio::test]
async fn the_same_seed_drops_the_same_events() {
    let a = delivered_ids_with_seed(7).await;
    let b = delivered_ids_with_seed(7).await;
    let c = delivered_ids_with_seed(8).await;
    assert!(!a.is_empty() && a.len() < 60);
    assert_eq!(a, b);
    assert_ne!(a, c);
}

async fn statuses_with_seed(seed: u64) -> Vec<u16> {
    let mut p = portal();
    p.tier = hubsync_emulator::Tier::Custom {
        burst: 1000,
        daily: 100_000,
    };
    let emu = start_with(EmulatorConfig {
        portals: vec![p],
        seed,
        faults: Faults {
            api_5xx_pct: 50.0,
            ..Faults::default()
        },
        ..EmulatorConfig::default()
    })
    .await;
    let c = Client::new(&emu);
    let mut out = Vec::new();
    for _ in 0..20 {
        let r = c.get("/crm/v3/objects/contacts").await;
        if r.status >= 500 {
            assert_eq!(r.body["status"], "error");
        }
        out.push(r.status);
    }
    assert_eq!(
        emu.admin().stats().portal(PORTAL).injected_5xx,
        out.iter().filter(|s| **s >= 500).count() as u64
    );
    emu.shutdown().await;
    out
}

#[tokio::test]
async fn api_5xx_fault_is_reproducible_from_the_seed() {
    let a = statuses_with_seed(3).await;
    assert!(a.iter().any(|s| *s >= 500) && a.contains(&200));
    assert_eq!(a, statuses_with_seed(3).await);
}

#[tokio::test]
async fn latency_fault_is_counted() {
    let emu = start_with(EmulatorConfig {
        portals: vec![portal()],
        faults: Faults {
            api_latency_pct: 100.0,
            api_latency_ms: 20,
            ..Faults::default()
        },
        ..EmulatorConfig::default()
    })
    .await;
    let c = Client::new(&emu);
    assert_eq!(c.get("/crm/v3/objects/contacts").await.status, 200);
    assert_eq!(emu.admin().stats().portal(PORTAL).injected_latency, 1);
    emu.shutdown().await;
}

#[tokio::test]
async fn merge_sends_merge_and_deletion_events() {
    let (emu, rx, _) = start_hooked(fast()).await;
    let admin = emu.admin();
    let a = admin
        .create(PORTAL, ObjectKind::Contact, [("email", "m1@x.example")], 5)
        .unwrap();
    let b = admin
        .create(
            PORTAL,
            ObjectKind::Contact,
            [("email", "m2@x.example"), ("city", "Boston")],
            5,
        )
        .unwrap();
    idle(&emu).await;
    rx.deliveries.lock().clear();
    let c = Client::new(&emu);
    let r = c
        .post(
            "/crm/v3/objects/contacts/merge",
            json!({"primaryObjectId": a.to_string(), "objectIdToMerge": b.to_string()}),
        )
        .await;
    let new_id: u64 = r.body["id"].as_str().unwrap().parse().unwrap();
    idle(&emu).await;
    let events = rx.events();
    let m = events
        .iter()
        .find(|e| e["subscriptionType"] == "contact.merge")
        .expect("merge event");
    assert_eq!(m["primaryObjectId"], a);
    assert_eq!(m["mergedObjectIds"], json!([b]));
    assert_eq!(m["newObjectId"], new_id);
    assert_ne!(m["newObjectId"], m["primaryObjectId"]);
    assert_eq!(m["numberOfPropertiesMoved"], 1);
    assert_eq!(m["changeSource"], "INTEGRATION");
    assert!(
        events
            .iter()
            .any(|e| e["subscriptionType"] == "contact.deletion" && e["objectId"] == b)
    );
    assert!(
        !events
            .iter()
            .any(|e| e["subscriptionType"] == "contact.propertyChange"),
        "no propertyChange for merged fields"
    );
    emu.shutdown().await;
}

#[tokio::test]
async fn association_change_sends_one_event_per_direction() {
    let (emu, rx, _) = start_hooked(fast()).await;
    let admin = emu.admin();
    let ct = admin
        .create(PORTAL, ObjectKind::Contact, [("email", "as@x.example")], 5)
        .unwrap();
    let co = admin
        .create(PORTAL, ObjectKind::Company, [("name", "Assoc")], 5)
        .unwrap();
    idle(&emu).await;
    rx.deliveries.lock().clear();
    admin
        .associate(
            PORTAL,
            (ObjectKind::Contact, ct),
            (ObjectKind::Company, co),
            None,
            5,
        )
        .unwrap();
    idle(&emu).await;
    let events = rx.events();
    assert_eq!(events.len(), 2, "{events:?}");
    let to_co = events
        .iter()
        .find(|e| e["subscriptionType"] == "contact.associationChange")
        .unwrap();
    assert_eq!(to_co["associationType"], "CONTACT_TO_COMPANY");
    assert_eq!(to_co["fromObjectId"], ct);
    assert_eq!(to_co["toObjectId"], co);
    assert_eq!(to_co["associationRemoved"], false);
    assert_eq!(to_co["isPrimaryAssociation"], false);
    let back = events
        .iter()
        .find(|e| e["subscriptionType"] == "company.associationChange")
        .unwrap();
    assert_eq!(back["associationType"], "COMPANY_TO_CONTACT");
    assert_eq!(back["fromObjectId"], co);
    rx.deliveries.lock().clear();
    admin
        .dissociate(
            PORTAL,
            (ObjectKind::Contact, ct),
            (ObjectKind::Company, co),
            5,
        )
        .unwrap();
    idle(&emu).await;
    assert!(rx.events().iter().all(|e| e["associationRemoved"] == true));
    assert_eq!(rx.events().len(), 2);
    emu.shutdown().await;
}

#[tokio::test]
async fn delete_and_restore_in_the_ui_send_deletion_and_restore() {
    let (emu, rx, _) = start_hooked(fast()).await;
    let admin = emu.admin();
    let id = admin
        .create(
            PORTAL,
            ObjectKind::Deal,
            [("dealname", "R"), ("dealstage", "closedwon")],
            9,
        )
        .unwrap();
    admin.archive(PORTAL, ObjectKind::Deal, id, 9).unwrap();
    admin.restore(PORTAL, ObjectKind::Deal, id, 9).unwrap();
    idle(&emu).await;
    let events = rx.events();
    let del = events
        .iter()
        .find(|e| e["subscriptionType"] == "deal.deletion")
        .unwrap();
    assert_eq!(del["changeFlag"], "DELETED");
    assert_eq!(del["sourceId"], "userId:9");
    assert!(
        events
            .iter()
            .any(|e| e["subscriptionType"] == "deal.restore" && e["objectId"] == id)
    );
    emu.shutdown().await;
}

#[tokio::test]
async fn unchanged_values_emit_no_property_change_unless_configured() {
    let (emu, rx, _) = start_hooked(fast()).await;
    let c = Client::new(&emu);
    let id = c
        .post(
            "/crm/v3/objects/contacts",
            json!({"properties": {"firstname": "Same"}}),
        )
        .await
        .body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    idle(&emu).await;
    rx.deliveries.lock().clear();
    c.patch(
        &format!("/crm/v3/objects/contacts/{id}"),
        json!({"properties": {"firstname": "Same"}}),
    )
    .await;
    idle(&emu).await;
    assert!(rx.events().is_empty());
    emu.admin()
        .update_settings(|s| s.emit_unchanged_property_change = true);
    c.patch(
        &format!("/crm/v3/objects/contacts/{id}"),
        json!({"properties": {"firstname": "Same"}}),
    )
    .await;
    idle(&emu).await;
    assert_eq!(rx.events().len(), 1);
    emu.admin()
        .update_settings(|s| s.api_change_source = hubsync_emulator::ApiChangeSource::Api);
    c.patch(
        &format!("/crm/v3/objects/contacts/{id}"),
        json!({"properties": {"firstname": "Other"}}),
    )
    .await;
    idle(&emu).await;
    let last = rx.events().pop().unwrap();
    assert_eq!(last["changeSource"], "API");
    assert!(last.get("sourceId").is_none());
    emu.shutdown().await;
}

#[tokio::test]
async fn subscriptions_api_controls_what_is_delivered() {
    let (url, rx) = receiver().await;
    let mut p = portal();
    p.webhook_target = Some(url.clone());
    p.subscriptions = hubsync_emulator::SubscriptionPreset::None;
    let emu = start_with(EmulatorConfig {
        portals: vec![p],
        settings: fast(),
        ..EmulatorConfig::default()
    })
    .await;
    let http = reqwest::Client::new();
    let base = format!("{}/webhooks/v3/{APP}", emu.base_url());
    let list: Value = http
        .get(format!("{base}/subscriptions?hapikey=dev"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["results"], json!([]));
    let r = http.post(format!("{base}/subscriptions?hapikey=dev")).json(&json!({"eventType": "contact.propertyChange", "propertyName": "firstname", "active": true})).send().await.unwrap();
    assert_eq!(r.status(), 201);
    let sub: Value = r.json().await.unwrap();
    assert_eq!(sub["eventType"], "contact.propertyChange");
    assert_eq!(sub["active"], true);
    let bad = http
        .post(format!("{base}/subscriptions?hapikey=dev"))
        .json(
            &json!({"eventType": "contact.propertyChange", "propertyName": "hs_lastmodifieddate"}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    let admin = emu.admin();
    let id = admin
        .create(
            PORTAL,
            ObjectKind::Contact,
            [("firstname", "Only"), ("lastname", "Ignored")],
            1,
        )
        .unwrap();
    idle(&emu).await;
    let events = rx.events();
    assert_eq!(events.len(), 1);
    assert_eq!(
        events[0]["subscriptionId"].as_u64().unwrap().to_string(),
        sub["id"].as_str().unwrap()
    );
    let r = http
        .patch(format!(
            "{base}/subscriptions/{}?hapikey=dev",
            sub["id"].as_str().unwrap()
        ))
        .json(&json!({"active": false}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    admin
        .update(PORTAL, ObjectKind::Contact, id, [("firstname", "Quiet")], 1)
        .unwrap();
    idle(&emu).await;
    assert_eq!(rx.events().len(), 1);
    let settings: Value = http
        .get(format!("{base}/settings?hapikey=dev"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(settings["targetUrl"], url);
    assert_eq!(settings["throttling"]["maxConcurrentRequests"], 10);
    emu.shutdown().await;
}

#[tokio::test]
async fn custom_properties_get_property_change_subscriptions_by_default() {
    let (emu, rx, _) = start_hooked(fast()).await;
    let c = Client::new(&emu);
    c.post("/crm/v3/properties/contacts", json!({"name": "hubsync_id", "label": "hubsync id", "type": "string", "fieldType": "text", "groupName": "contactinformation", "hasUniqueValue": true})).await;
    c.post(
        "/crm/v3/objects/contacts",
        json!({"properties": {"hubsync_id": "L-1"}}),
    )
    .await;
    idle(&emu).await;
    assert!(
        rx.events()
            .iter()
            .any(|e| e["propertyName"] == "hubsync_id" && e["propertyValue"] == "L-1")
    );
    emu.shutdown().await;
}

#[tokio::test]
async fn a_5xx_after_write_still_applies_the_write() {
    let emu = start().await;
    emu.admin().set_faults(Faults {
        api_5xx_after_write_pct: 100.0,
        ..Faults::default()
    });
    let c = Client::new(&emu);
    let r = c
        .post(
            "/crm/v3/objects/contacts",
            json!({"properties": {"email": "ghost@x.example"}}),
        )
        .await;
    assert_eq!(r.status, 502);
    assert_eq!(r.body["status"], "error");
    emu.admin().set_faults(Faults::default());
    let again = c
        .post(
            "/crm/v3/objects/contacts",
            json!({"properties": {"email": "ghost@x.example"}}),
        )
        .await;
    assert_eq!(again.status, 409, "the first create happened");
    assert_eq!(
        emu.admin().stats().portal(PORTAL).injected_5xx_after_write,
        1
    );
    emu.shutdown().await;
}
