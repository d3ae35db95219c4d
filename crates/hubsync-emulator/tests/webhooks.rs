//! Webhook delivery over real HTTP, verified with an implementation of HubSpot's signature
//! formulas written here from the digest (not the emulator's signer).

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use base64::Engine;
use common::*;
use hmac::{KeyInit, Mac};
use hubsync_emulator::{EmulatorConfig, ObjectKind, Settings};
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
