//! CRM search over real HTTP: operators, sorting, paging, limits, the 10,000 cap, indexing lag.

#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use hubsync_emulator::{EmulatorConfig, ObjectKind, SearchLimits, SeedSpec, Settings};
use serde_json::{Value, json};

async fn seeded() -> (hubsync_emulator::EmulatorHandle, Client, Vec<String>) {
    let emu = start().await;
    emu.admin()
        .update_settings(|s| s.search_per_second = 10_000);
    let c = Client::new(&emu);
    let people = [
        ("Alice", "Smith", "alice@hubspot.example", "30", "lead"),
        ("Bob", "Jones", "bob@other.example", "45", "customer"),
        ("alice", "Brown", "alice.b@hubspot.example", "", "customer"),
        ("Carol", "Smith", "carol@third.example", "60", "lead"),
    ];
    c.post("/crm/v3/properties/contacts", json!({"name": "age", "label": "Age", "type": "number", "fieldType": "number", "groupName": "contactinformation"})).await;
    let mut ids = Vec::new();
    for (f, l, e, age, stage) in people {
        let mut props = json!({"firstname": f, "lastname": l, "email": e, "lifecyclestage": stage});
        if !age.is_empty() {
            props["age"] = json!(age);
        }
        let r = c
            .post("/crm/v3/objects/contacts", json!({"properties": props}))
            .await;
        assert_eq!(r.status, 201, "{}", r.body);
        ids.push(r.body["id"].as_str().unwrap().to_owned());
        tokio::time::sleep(std::time::Duration::from_millis(3)).await;
    }
    (emu, c, ids)
}

async fn search(c: &Client, body: Value) -> Value {
    let r = c.post("/crm/v3/objects/contacts/search", body).await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.body
}

fn ids_of(b: &Value) -> Vec<String> {
    b["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_owned())
        .collect()
}

async fn one(c: &Client, filter: Value) -> Vec<String> {
    ids_of(
        &search(
            c,
            json!({"filterGroups": [{"filters": [filter]}], "limit": 100}),
        )
        .await,
    )
}

#[tokio::test]
async fn every_operator_filters_as_documented() {
    let (emu, c, ids) = seeded().await;
    let (a, b, a2, cr) = (
        ids[0].clone(),
        ids[1].clone(),
        ids[2].clone(),
        ids[3].clone(),
    );
    assert_eq!(
        one(
            &c,
            json!({"propertyName": "firstname", "operator": "EQ", "value": "ALICE"})
        )
        .await,
        [a.clone(), a2.clone()]
    );
    assert_eq!(
        one(
            &c,
            json!({"propertyName": "lastname", "operator": "NEQ", "value": "smith"})
        )
        .await,
        [b.clone(), a2.clone()]
    );
    assert_eq!(
        one(
            &c,
            json!({"propertyName": "age", "operator": "LT", "value": "45"})
        )
        .await,
        vec![a.clone()]
    );
    assert_eq!(
        one(
            &c,
            json!({"propertyName": "age", "operator": "LTE", "value": "45"})
        )
        .await,
        [a.clone(), b.clone()]
    );
    assert_eq!(
        one(
            &c,
            json!({"propertyName": "age", "operator": "GT", "value": "45"})
        )
        .await,
        vec![cr.clone()]
    );
    assert_eq!(
        one(
            &c,
            json!({"propertyName": "age", "operator": "GTE", "value": 45})
        )
        .await,
        [b.clone(), cr.clone()]
    );
    assert_eq!(
        one(
            &c,
            json!({"propertyName": "age", "operator": "BETWEEN", "value": "40", "highValue": "60"})
        )
        .await,
        [b.clone(), cr.clone()]
    );
    assert_eq!(
        one(
            &c,
            json!({"propertyName": "lastname", "operator": "IN", "values": ["smith", "jones"]})
        )
        .await,
        [a.clone(), b.clone(), cr.clone()]
    );
    assert_eq!(
        one(
            &c,
            json!({"propertyName": "lastname", "operator": "IN", "values": ["Smith"]})
        )
        .await,
        Vec::<String>::new(),
        "string IN values must be lower-case"
    );
    assert_eq!(
        one(
            &c,
            json!({"propertyName": "lastname", "operator": "NOT_IN", "values": ["smith"]})
        )
        .await,
        [b.clone(), a2.clone()]
    );
    assert_eq!(
        one(
            &c,
            json!({"propertyName": "age", "operator": "HAS_PROPERTY"})
        )
        .await,
        [a.clone(), b.clone(), cr.clone()]
    );
    assert_eq!(
        one(
            &c,
            json!({"propertyName": "age", "operator": "NOT_HAS_PROPERTY"})
        )
        .await,
        vec![a2.clone()]
    );
    assert_eq!(one(&c, json!({"propertyName": "email", "operator": "CONTAINS_TOKEN", "value": "*@hubspot.example"})).await, [a.clone(), a2.clone()]);
    assert_eq!(one(&c, json!({"propertyName": "email", "operator": "NOT_CONTAINS_TOKEN", "value": "*@hubspot.example"})).await, [b.clone(), cr.clone()]);
    assert_eq!(
        one(
            &c,
            json!({"propertyName": "lifecyclestage", "operator": "EQ", "value": "lead"})
        )
        .await,
        [a.clone(), cr.clone()]
    );
    assert_eq!(
        one(
            &c,
            json!({"propertyName": "lifecyclestage", "operator": "EQ", "value": "LEAD"})
        )
        .await,
        Vec::<String>::new(),
        "enumerations are case-sensitive"
    );
    assert_eq!(
        one(
            &c,
            json!({"propertyName": "hs_object_id", "operator": "GT", "value": b})
        )
        .await,
        [a2.clone(), cr.clone()]
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis();
    let window = one(&c, json!({"propertyName": "lastmodifieddate", "operator": "BETWEEN", "value": (now - 60_000).to_string(), "highValue": (now + 60_000).to_string()})).await;
    assert_eq!(window.len(), 4);
    emu.shutdown().await;
}

#[tokio::test]
async fn groups_are_ored_filters_anded_and_query_matches_text() {
    let (emu, c, ids) = seeded().await;
    let b = search(&c, json!({"filterGroups": [
        {"filters": [{"propertyName": "firstname", "operator": "EQ", "value": "alice"}, {"propertyName": "lastname", "operator": "EQ", "value": "smith"}]},
        {"filters": [{"propertyName": "firstname", "operator": "EQ", "value": "bob"}]}]})).await;
    assert_eq!(ids_of(&b), [ids[0].clone(), ids[1].clone()]);
    assert_eq!(b["total"], 2);
    let q = search(&c, json!({"query": "third.example"})).await;
    assert_eq!(ids_of(&q), [ids[3].clone()]);
    emu.shutdown().await;
}

#[tokio::test]
async fn empty_body_returns_defaults_oldest_first_and_one_sort_only() {
    let (emu, c, ids) = seeded().await;
    let r = c.post("/crm/v3/objects/contacts/search", json!({})).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["total"], 4);
    assert_eq!(ids_of(&r.body), ids);
    let mut keys: Vec<&String> = r.body["results"][0]["properties"]
        .as_object()
        .unwrap()
        .keys()
        .collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "createdate",
            "email",
            "firstname",
            "hs_object_id",
            "lastmodifieddate",
            "lastname"
        ]
    );
    assert!(r.body.get("paging").is_none());
    assert!(
        r.header("x-hubspot-ratelimit-max").is_none(),
        "search answers carry no rate-limit headers"
    );
    assert!(r.header("x-hubspot-ratelimit-remaining").is_none());
    assert!(r.header("x-hubspot-correlation-id").is_some());
    let desc = search(&c, json!({"sorts": [{"propertyName": "age", "direction": "DESCENDING"}], "properties": ["age"]})).await;
    assert_eq!(
        ids_of(&desc)[..3],
        [ids[3].clone(), ids[1].clone(), ids[0].clone()]
    );
    assert_eq!(
        keys_of(&desc["results"][0]["properties"]),
        ["age", "createdate", "hs_object_id", "lastmodifieddate"]
    );
    let s = search(&c, json!({"sorts": ["-createdate"]})).await;
    assert_eq!(ids_of(&s)[0], ids[3]);
    let two = c
        .post(
            "/crm/v3/objects/contacts/search",
            json!({"sorts": [{"propertyName": "age"}, {"propertyName": "email"}]}),
        )
        .await;
    assert_eq!(two.status, 400);
    emu.shutdown().await;
}

fn keys_of(v: &Value) -> Vec<String> {
    let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
    k.sort();
    k
}

#[tokio::test]
async fn paging_uses_integer_offsets_and_limit_is_capped_at_200() {
    let (emu, c, ids) = seeded().await;
    let p1 = search(&c, json!({"limit": 3})).await;
    assert_eq!(p1["paging"]["next"]["after"], "3");
    let p2 = search(&c, json!({"limit": 3, "after": "3"})).await;
    assert_eq!(ids_of(&p2), [ids[3].clone()]);
    assert!(p2.get("paging").is_none());
    let r = c
        .post("/crm/v3/objects/contacts/search", json!({"limit": 201}))
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(r.body["category"], "VALIDATION_ERROR");
    let r = c
        .post("/crm/v3/objects/contacts/search", json!({"after": "abc"}))
        .await;
    assert_eq!(r.status, 400);
    emu.shutdown().await;
}

#[tokio::test]
async fn paging_past_10000_results_is_a_400() {
    let emu = start().await;
    emu.admin()
        .update_settings(|s| s.search_per_second = 10_000);
    emu.admin()
        .seed(
            PORTAL,
            &SeedSpec {
                contacts: 10_050,
                ..SeedSpec::default()
            },
        )
        .unwrap();
    let c = Client::new(&emu);
    let last = search(&c, json!({"limit": 200, "after": "9900"})).await;
    assert_eq!(last["total"], 10_050);
    assert_eq!(
        last["results"].as_array().unwrap().len(),
        100,
        "results stop at the 10,000th"
    );
    let r = c
        .post(
            "/crm/v3/objects/contacts/search",
            json!({"limit": 10, "after": "10000"}),
        )
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(r.body["status"], "error");
    assert_eq!(r.body["category"], "VALIDATION_ERROR");
    // The documented workaround: keyset paging on hs_object_id.
    let first = search(&c, json!({"limit": 1, "sorts": [{"propertyName": "hs_object_id", "direction": "ASCENDING"}],
        "filterGroups": [{"filters": [{"propertyName": "hs_object_id", "operator": "GT", "value": "10000"}]}]})).await;
    assert_eq!(first["results"][0]["id"], "10001");
    emu.shutdown().await;
}

#[tokio::test]
async fn too_many_groups_or_filters_is_a_validation_error() {
    let (emu, c, _) = seeded().await;
    let f = json!({"propertyName": "firstname", "operator": "HAS_PROPERTY"});
    let groups: Vec<Value> = (0..6).map(|_| json!({"filters": [f.clone()]})).collect();
    let r = c
        .post(
            "/crm/v3/objects/contacts/search",
            json!({"filterGroups": groups}),
        )
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(r.body["category"], "VALIDATION_ERROR");
    let r = c
        .post(
            "/crm/v3/objects/contacts/search",
            json!({"filterGroups": [{"filters": vec![f.clone(); 7]}]}),
        )
        .await;
    assert_eq!(r.status, 400);
    let groups: Vec<Value> = (0..4)
        .map(|_| json!({"filters": vec![f.clone(); 5]}))
        .collect();
    let r = c
        .post(
            "/crm/v3/objects/contacts/search",
            json!({"filterGroups": groups}),
        )
        .await;
    assert_eq!(r.status, 400, "19+ filters in total");
    emu.admin().update_settings(|s| {
        s.search_limits = SearchLimits {
            max_groups: 5,
            max_filters_per_group: 10,
            max_filters_total: 25,
        }
    });
    let r = c
        .post(
            "/crm/v3/objects/contacts/search",
            json!({"filterGroups": [{"filters": vec![f.clone(); 7]}]}),
        )
        .await;
    assert_eq!(r.status, 200);
    let r = c.post("/crm/v3/objects/contacts/search", json!({"filterGroups": [{"filters": [{"propertyName": "x", "operator": "LIKE", "value": "1"}]}]})).await;
    assert_eq!(r.status, 400);
    emu.shutdown().await;
}

#[tokio::test]
async fn archived_records_never_appear_in_search() {
    let (emu, c, ids) = seeded().await;
    c.delete(&format!("/crm/v3/objects/contacts/{}", ids[0]))
        .await;
    let b = search(&c, json!({})).await;
    assert_eq!(b["total"], 3);
    assert!(!ids_of(&b).contains(&ids[0]));
    emu.shutdown().await;
}

#[tokio::test]
async fn writes_become_searchable_only_after_the_indexing_lag() {
    let settings = Settings {
        search_lag_ms: 60_000,
        search_per_second: 10_000,
        ..Settings::default()
    };
    let emu = start_with(EmulatorConfig {
        portals: vec![portal()],
        settings,
        ..EmulatorConfig::default()
    })
    .await;
    let c = Client::new(&emu);
    let r = c
        .post(
            "/crm/v3/objects/contacts",
            json!({"properties": {"email": "late@x.example", "firstname": "Old"}}),
        )
        .await;
    let id = r.body["id"].as_str().unwrap().to_owned();
    assert_eq!(
        search(&c, json!({})).await["total"],
        0,
        "a fresh create is not searchable yet"
    );
    assert_eq!(
        c.get(&format!("/crm/v3/objects/contacts/{id}"))
            .await
            .status,
        200,
        "but readable by id"
    );
    emu.admin().flush_search(PORTAL).unwrap();
    let f = json!({"filterGroups": [{"filters": [{"propertyName": "firstname", "operator": "EQ", "value": "old"}]}]});
    assert_eq!(search(&c, f.clone()).await["total"], 1);
    emu.admin()
        .update(
            PORTAL,
            ObjectKind::Contact,
            id.parse().unwrap(),
            [("firstname", "New")],
            1,
        )
        .unwrap();
    assert_eq!(
        search(&c, f).await["total"],
        1,
        "search still sees the old value"
    );
    emu.admin().update_settings(|s| s.search_lag_ms = 600);
    emu.admin().flush_search(PORTAL).unwrap();
    let r = c
        .post(
            "/crm/v3/objects/contacts",
            json!({"properties": {"email": "soon@x.example"}}),
        )
        .await;
    assert_eq!(r.status, 201);
    assert_eq!(search(&c, json!({})).await["total"], 1);
    tokio::time::sleep(std::time::Duration::from_millis(700)).await;
    assert_eq!(search(&c, json!({})).await["total"], 2);
    emu.shutdown().await;
}

#[tokio::test]
async fn search_by_association_pseudo_property() {
    let (emu, c, ids) = seeded().await;
    let co = c
        .post(
            "/crm/v3/objects/companies",
            json!({"properties": {"name": "X"}}),
        )
        .await
        .body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    c.call(
        "PUT",
        &format!(
            "/crm/v4/objects/contacts/{}/associations/default/companies/{co}",
            ids[1]
        ),
        None,
    )
    .await;
    let r = c.post("/crm/v3/objects/contacts/search", json!({"filterGroups": [{"filters": [{"propertyName": "associations.company", "operator": "EQ", "value": co}]}]})).await;
    assert_eq!(ids_of(&r.body), [ids[1].clone()]);
    emu.shutdown().await;
}

#[tokio::test]
async fn keyset_and_recent_change_plans_agree_with_the_definition() {
    let emu = start().await;
    emu.admin()
        .update_settings(|s| s.search_per_second = 10_000);
    let report = emu
        .admin()
        .seed(
            PORTAL,
            &SeedSpec {
                contacts: 3000,
                ..SeedSpec::default()
            },
        )
        .unwrap();
    let (first, _) = report.contact_ids.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let touched: Vec<u64> = (0..30).map(|i| first + i * 97).collect();
    for id in &touched {
        emu.admin()
            .update(
                PORTAL,
                ObjectKind::Contact,
                *id,
                [("jobtitle", "Changed")],
                1,
            )
            .unwrap();
    }
    let c = Client::new(&emu);
    let x = first + 500;
    let expected: Vec<String> = touched
        .iter()
        .filter(|id| **id > x)
        .map(|id| id.to_string())
        .collect();
    // Selective date window, sorted by id: driven by the last-modified index.
    let b = search(&c, json!({"limit": 200, "sorts": [{"propertyName": "hs_object_id", "direction": "ASCENDING"}],
        "filterGroups": [{"filters": [{"propertyName": "hs_object_id", "operator": "GT", "value": x.to_string()},
            {"propertyName": "lastmodifieddate", "operator": "GTE", "value": since.to_string()}]}]})).await;
    assert_eq!(ids_of(&b), expected);
    assert_eq!(b["total"], expected.len());
    // A window covering everything: streamed on the id index.
    let all = search(&c, json!({"limit": 5, "sorts": [{"propertyName": "hs_object_id", "direction": "ASCENDING"}],
        "filterGroups": [{"filters": [{"propertyName": "hs_object_id", "operator": "GT", "value": x.to_string()},
            {"propertyName": "lastmodifieddate", "operator": "GTE", "value": "0"}]}]})).await;
    assert_eq!(all["total"], 3000 - 500 - 1);
    assert_eq!(ids_of(&all)[0], (x + 1).to_string());
    assert_eq!(all["paging"]["next"]["after"], "5");
    // Descending on last-modified: the touched records come first, newest first.
    let recent = search(&c, json!({"limit": 3, "sorts": [{"propertyName": "lastmodifieddate", "direction": "DESCENDING"}]})).await;
    assert_eq!(ids_of(&recent)[0], touched.last().unwrap().to_string());
    assert_eq!(recent["total"], 3000);
    // Residual filters on the streamed path.
    let named = search(&c, json!({"limit": 200, "sorts": [{"propertyName": "hs_object_id", "direction": "DESCENDING"}],
        "filterGroups": [{"filters": [{"propertyName": "jobtitle", "operator": "EQ", "value": "changed"}]}]})).await;
    let mut rev: Vec<String> = touched.iter().map(|id| id.to_string()).collect();
    rev.reverse();
    assert_eq!(ids_of(&named), rev);
    emu.shutdown().await;
}

#[tokio::test]
async fn contradictory_ranges_return_nothing_instead_of_failing() {
    let (emu, c, _) = seeded().await;
    for (prop, lo, hi) in [
        ("hs_object_id", "500", "100"),
        ("lastmodifieddate", "1700000000000", "1600000000000"),
        ("createdate", "5", "5"),
    ] {
        for sort in ["hs_object_id", "createdate", "lastmodifieddate"] {
            let b = search(&c, json!({"sorts": [{"propertyName": sort}], "filterGroups": [{"filters": [
                {"propertyName": prop, "operator": "GT", "value": lo}, {"propertyName": prop, "operator": "LT", "value": hi}]}]})).await;
            assert_eq!(b["total"], 0, "{prop} {sort}");
        }
    }
    emu.shutdown().await;
}
