//! The admin API over HTTP and in process: portals at runtime, seeding, dumps, stats.

#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use hubsync_emulator::{EmulatorConfig, ObjectKind, SeedSpec};
use serde_json::{Value, json};

async fn admin_call(
    emu: &hubsync_emulator::EmulatorHandle,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut rb = reqwest::Client::new().request(m, format!("{}/_emulator{path}", emu.base_url()));
    if let Some(b) = body {
        rb = rb.json(&b);
    }
    let r = rb.send().await.unwrap();
    let s = r.status().as_u16();
    let t = r.text().await.unwrap();
    (
        s,
        if t.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&t).unwrap()
        },
    )
}

#[tokio::test]
async fn portals_can_be_added_and_removed_over_http() {
    let emu = start_with(EmulatorConfig::default()).await;
    let (s, _) = admin_call(&emu, "POST", "/portals", Some(json!({"portal_id": 777, "app_id": 9, "private_app_token": "pat-na1-777", "tier": {"kind": "professional"}}))).await;
    assert_eq!(s, 201);
    let (s, _) = admin_call(
        &emu,
        "POST",
        "/portals",
        Some(json!({"portal_id": 777, "app_id": 9})),
    )
    .await;
    assert_eq!(s, 409);
    let mut c = Client::new(&emu);
    c.token = "pat-na1-777".into();
    let r = c.get("/crm/v3/objects/contacts").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-hubspot-ratelimit-max").as_deref(), Some("190"));
    assert_eq!(
        r.header("x-hubspot-ratelimit-daily").as_deref(),
        Some("625000")
    );
    let (_, list) = admin_call(&emu, "GET", "/portals", None).await;
    assert_eq!(list["portals"], json!([777]));
    assert_eq!(
        admin_call(&emu, "DELETE", "/portals/777", None).await.0,
        204
    );
    assert_eq!(c.get("/crm/v3/objects/contacts").await.status, 401);
    emu.shutdown().await;
}

#[tokio::test]
async fn portals_keep_separate_data_and_ids_repeat_across_types() {
    let mut other = portal();
    other.portal_id = 999;
    other.private_app_token = Some("pat-na1-other".into());
    let emu = start_with(EmulatorConfig {
        portals: vec![portal(), other],
        ..EmulatorConfig::default()
    })
    .await;
    let c = Client::new(&emu);
    let ct = c
        .post(
            "/crm/v3/objects/contacts",
            json!({"properties": {"email": "one@x.example"}}),
        )
        .await;
    let co = c
        .post(
            "/crm/v3/objects/companies",
            json!({"properties": {"name": "One"}}),
        )
        .await;
    assert_eq!(
        ct.body["id"], co.body["id"],
        "ids are unique only within a type"
    );
    let mut c2 = Client::new(&emu);
    c2.token = "pat-na1-other".into();
    assert_eq!(
        c2.get("/crm/v3/objects/contacts").await.body["results"],
        json!([])
    );
    assert_eq!(
        c2.post(
            "/crm/v3/objects/contacts",
            json!({"properties": {"email": "one@x.example"}})
        )
        .await
        .status,
        201
    );
    emu.shutdown().await;
}

#[tokio::test]
async fn ui_actions_over_http_change_records() {
    let emu = start().await;
    let (s, b) = admin_call(
        &emu,
        "POST",
        &format!("/portals/{PORTAL}/objects/contacts"),
        Some(json!({"properties": {"email": "ui@x.example"}, "userId": 12})),
    )
    .await;
    assert_eq!(s, 201);
    let id = b["id"].as_str().unwrap().to_owned();
    let (s, _) = admin_call(
        &emu,
        "PATCH",
        &format!("/portals/{PORTAL}/objects/contacts/{id}"),
        Some(json!({"properties": {"firstname": "Ui"}})),
    )
    .await;
    assert_eq!(s, 204);
    let (_, got) = admin_call(
        &emu,
        "GET",
        &format!("/portals/{PORTAL}/objects/contacts/{id}"),
        None,
    )
    .await;
    assert_eq!(got["properties"]["firstname"], "Ui");
    let (s, b2) = admin_call(
        &emu,
        "POST",
        &format!("/portals/{PORTAL}/objects/contacts"),
        Some(json!({"properties": {"email": "ui2@x.example"}})),
    )
    .await;
    assert_eq!(s, 201);
    let (s, m) = admin_call(
        &emu,
        "POST",
        &format!("/portals/{PORTAL}/objects/contacts/merge"),
        Some(json!({"primaryObjectId": id, "objectIdToMerge": b2["id"]})),
    )
    .await;
    assert_eq!(s, 200);
    let merged = m["id"].as_str().unwrap().to_owned();
    assert_eq!(
        admin_call(
            &emu,
            "DELETE",
            &format!("/portals/{PORTAL}/objects/contacts/{merged}"),
            None
        )
        .await
        .0,
        204
    );
    assert_eq!(
        admin_call(
            &emu,
            "POST",
            &format!("/portals/{PORTAL}/objects/contacts/{merged}/restore"),
            None
        )
        .await
        .0,
        204
    );
    let (s, _) = admin_call(
        &emu,
        "POST",
        &format!("/portals/{PORTAL}/objects/contacts"),
        Some(json!({"properties": {"email": "ui2@x.example"}})),
    )
    .await;
    assert_eq!(s, 409, "the merged-away email stays taken");
    emu.shutdown().await;
}

#[tokio::test]
async fn dump_contains_live_archived_merged_and_associations() {
    let emu = start().await;
    let a = emu.admin();
    let c1 = a
        .create(PORTAL, ObjectKind::Contact, [("email", "d1@x.example")], 1)
        .unwrap();
    let c2 = a
        .create(PORTAL, ObjectKind::Contact, [("email", "d2@x.example")], 1)
        .unwrap();
    let c3 = a
        .create(PORTAL, ObjectKind::Contact, [("email", "d3@x.example")], 1)
        .unwrap();
    let co = a
        .create(PORTAL, ObjectKind::Company, [("name", "Dump")], 1)
        .unwrap();
    a.associate(
        PORTAL,
        (ObjectKind::Contact, c3),
        (ObjectKind::Company, co),
        Some(1),
        1,
    )
    .unwrap();
    a.archive(PORTAL, ObjectKind::Contact, c1, 1).unwrap();
    let merged = a.merge(PORTAL, ObjectKind::Contact, c3, c2, 1).unwrap();
    let (s, d) = admin_call(&emu, "GET", &format!("/portals/{PORTAL}/dump"), None).await;
    assert_eq!(s, 200);
    let contacts = &d["objects"]["contacts"];
    assert_eq!(contacts["archived"][0]["id"], c1.to_string());
    assert_eq!(contacts["live"].as_array().unwrap().len(), 1);
    assert_eq!(contacts["live"][0]["id"], merged.to_string());
    assert_eq!(contacts["mergedIds"][c2.to_string()], merged.to_string());
    let assoc = d["associations"].as_array().unwrap();
    assert!(
        assoc
            .iter()
            .any(|x| x["fromObjectId"] == merged && x["toObjectId"] == co)
    );
    emu.shutdown().await;
}

#[tokio::test]
async fn seeding_is_fast_realistic_and_deterministic() {
    let emu = start().await;
    let spec = SeedSpec {
        contacts: 500,
        companies: 50,
        deals: 100,
        duplicate_share: 0.1,
        associate: true,
        seed: Some(42),
    };
    let (s, report) = admin_call(
        &emu,
        "POST",
        &format!("/portals/{PORTAL}/seed"),
        Some(serde_json::to_value(&spec).unwrap()),
    )
    .await;
    assert_eq!(s, 200);
    assert!(report["near_duplicates"].as_u64().unwrap() > 10);
    assert_eq!(emu.admin().count(PORTAL, ObjectKind::Contact).unwrap(), 500);
    let c = Client::new(&emu);
    let page = c
        .get("/crm/v3/objects/contacts?limit=100&properties=email,firstname,lastname,company")
        .await;
    for r in page.body["results"].as_array().unwrap() {
        assert!(r["properties"]["email"].as_str().unwrap().contains('@'));
        assert!(r["properties"]["firstname"].is_string());
    }
    let deals = c
        .get("/crm/v3/objects/deals?limit=1&associations=companies")
        .await;
    assert!(deals.body["results"][0]["associations"]["companies"].is_object());
    let other = start().await;
    other.admin().seed(PORTAL, &spec).unwrap();
    let d1 = emu.admin().dump(PORTAL).unwrap();
    let d2 = other.admin().dump(PORTAL).unwrap();
    let names = |d: &Value| {
        d["objects"]["contacts"]["live"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["properties"]["email"].clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(names(&d1), names(&d2));
    emu.shutdown().await;
    other.shutdown().await;
}

#[tokio::test]
async fn faults_settings_and_stats_round_trip_over_http() {
    let emu = start().await;
    let (s, f) = admin_call(&emu, "GET", "/faults", None).await;
    assert_eq!(s, 200);
    assert_eq!(f["api_5xx_pct"], 0.0);
    assert_eq!(
        admin_call(&emu, "PUT", "/faults", Some(json!({"api_5xx_pct": 100.0})))
            .await
            .0,
        204
    );
    let c = Client::new(&emu);
    assert!(c.get("/crm/v3/objects/contacts").await.status >= 500);
    assert_eq!(
        admin_call(&emu, "PUT", "/faults", Some(json!({}))).await.0,
        204
    );
    assert_eq!(c.get("/crm/v3/objects/contacts").await.status, 200);
    let (_, mut st) = admin_call(&emu, "GET", "/settings", None).await;
    st["search_lag_ms"] = json!(250);
    assert_eq!(admin_call(&emu, "PUT", "/settings", Some(st)).await.0, 204);
    assert_eq!(emu.admin().settings().search_lag_ms, 250);
    assert_eq!(
        admin_call(
            &emu,
            "PUT",
            "/settings",
            Some(json!({"no_such_setting": 1}))
        )
        .await
        .0,
        400
    );
    let (_, stats) = admin_call(&emu, "GET", "/stats", None).await;
    assert_eq!(stats["portals"][PORTAL.to_string()]["requests"], 2);
    assert_eq!(
        stats["portals"][PORTAL.to_string()]["requests_by_operation"]["contacts.list"],
        2
    );
    assert_eq!(
        stats["portals"][PORTAL.to_string()]["requests_by_app"][APP.to_string()],
        2
    );
    assert_eq!(admin_call(&emu, "POST", "/stats/reset", None).await.0, 204);
    assert_eq!(emu.admin().stats().portal(PORTAL).requests, 0);
    assert_eq!(
        admin_call(&emu, "POST", "/tokens/expire", None).await.0,
        204
    );
    assert_eq!(admin_call(&emu, "GET", "/nothing", None).await.0, 404);
    emu.shutdown().await;
}
