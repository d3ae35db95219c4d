//! CRM v3 objects over real HTTP: shapes, status codes and error bodies as the digest gives them.

#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use serde_json::json;

#[tokio::test]
async fn create_returns_201_with_hubspot_object_shape() {
    let emu = start().await;
    let c = Client::new(&emu);
    let r = c.post("/crm/v3/objects/contacts", json!({"properties": {"email": "lorelai@thedragonfly.com", "firstname": "Lorelai", "lastname": "Gilmore"}})).await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let b = &r.body;
    let id = b["id"].as_str().expect("id is a string");
    assert!(id.parse::<u64>().is_ok());
    assert_eq!(b["properties"]["hs_object_id"], id);
    assert_eq!(b["properties"]["email"], "lorelai@thedragonfly.com");
    assert_eq!(b["archived"], false);
    assert_eq!(b["createdAt"], b["properties"]["createdate"]);
    assert_eq!(b["updatedAt"], b["properties"]["lastmodifieddate"]);
    let created = b["createdAt"].as_str().unwrap();
    assert_eq!(created.len(), "2024-01-17T19:55:04.281Z".len());
    assert!(created.ends_with('Z'));
    assert!(r.header("x-hubspot-ratelimit-max").is_some());
    emu.shutdown().await;
}

fn keys(v: &serde_json::Value) -> Vec<String> {
    let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
    k.sort();
    k
}

fn assert_error_shape(body: &serde_json::Value, category: &str) {
    assert_eq!(body["status"], "error", "{body}");
    assert_eq!(body["category"], category, "{body}");
    let cid = body["correlationId"].as_str().expect("correlationId");
    assert_eq!(cid.len(), 36, "correlationId is a uuid: {cid}");
    assert!(body["message"].is_string());
}

async fn create_contact(c: &Client, email: &str) -> String {
    let r = c
        .post(
            "/crm/v3/objects/contacts",
            json!({"properties": {"email": email}}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    r.body["id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn get_without_properties_returns_the_default_set_with_nulls() {
    let emu = start().await;
    let c = Client::new(&emu);
    let id = create_contact(&c, "x@y.example").await;
    let r = c.get(&format!("/crm/v3/objects/contacts/{id}")).await;
    assert_eq!(r.status, 200);
    assert_eq!(
        keys(&r.body["properties"]),
        [
            "createdate",
            "email",
            "firstname",
            "hs_object_id",
            "lastmodifieddate",
            "lastname"
        ]
    );
    assert!(r.body["properties"]["firstname"].is_null());
    assert_eq!(
        keys(&r.body),
        ["archived", "createdAt", "id", "properties", "updatedAt"]
    );
    emu.shutdown().await;
}

#[tokio::test]
async fn explicit_properties_add_dates_and_id_and_skip_unknown_names() {
    let emu = start().await;
    let c = Client::new(&emu);
    let id = create_contact(&c, "x@y.example").await;
    let r = c
        .get(&format!(
            "/crm/v3/objects/contacts/{id}?properties=email,nosuchprop&properties=city"
        ))
        .await;
    assert_eq!(
        keys(&r.body["properties"]),
        [
            "city",
            "createdate",
            "email",
            "hs_object_id",
            "lastmodifieddate"
        ]
    );
    assert!(r.body["properties"]["city"].is_null());
    emu.shutdown().await;
}

#[tokio::test]
async fn companies_and_deals_use_hs_lastmodifieddate_and_their_defaults() {
    let emu = start().await;
    let c = Client::new(&emu);
    let r = c
        .post(
            "/crm/v3/objects/companies",
            json!({"properties": {"name": "Dragonfly Inn", "domain": "dragonfly.example"}}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let id = r.body["id"].as_str().unwrap();
    let g = c.get(&format!("/crm/v3/objects/0-2/{id}")).await;
    assert_eq!(
        keys(&g.body["properties"]),
        [
            "createdate",
            "domain",
            "hs_lastmodifieddate",
            "hs_object_id",
            "name"
        ]
    );
    assert_eq!(
        g.body["updatedAt"],
        g.body["properties"]["hs_lastmodifieddate"]
    );
    let d = c.post("/crm/v3/objects/deals", json!({"properties": {"dealname": "Renewal", "dealstage": "closedwon", "amount": "1500"}})).await;
    assert_eq!(d.status, 201, "{}", d.body);
    let did = d.body["id"].as_str().unwrap();
    let g = c.get(&format!("/crm/v3/objects/deal/{did}")).await;
    assert_eq!(
        keys(&g.body["properties"]),
        [
            "amount",
            "closedate",
            "createdate",
            "dealname",
            "dealstage",
            "hs_lastmodifieddate",
            "hs_object_id",
            "pipeline"
        ]
    );
    assert_eq!(g.body["properties"]["pipeline"], "default");
    emu.shutdown().await;
}

#[tokio::test]
async fn missing_record_gets_404_with_the_two_space_message() {
    let emu = start().await;
    let c = Client::new(&emu);
    let r = c.get("/crm/v3/objects/contacts/999999").await;
    assert_eq!(r.status, 404);
    assert_error_shape(&r.body, "OBJECT_NOT_FOUND");
    assert_eq!(
        r.body["message"],
        "Object not found.  objectId are usually numeric."
    );
    assert_eq!(r.body["context"]["id"], json!(["999999"]));
    let r = c
        .get("/crm/v3/objects/contacts/nobody@x.example?idProperty=email")
        .await;
    assert_eq!(r.status, 404);
    emu.shutdown().await;
}

#[tokio::test]
async fn get_and_patch_by_email_id_property() {
    let emu = start().await;
    let c = Client::new(&emu);
    let id = create_contact(&c, "Jon@Website.example").await;
    let r = c
        .get("/crm/v3/objects/contacts/jon@website.example?idProperty=email")
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["id"], id.as_str());
    let r = c
        .patch(
            "/crm/v3/objects/contacts/jon@website.example?idProperty=email",
            json!({"properties": {"firstname": "Jon"}}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["properties"]["firstname"], "Jon");
    emu.shutdown().await;
}

#[tokio::test]
async fn duplicate_email_create_gets_409_naming_the_existing_id() {
    let emu = start().await;
    let c = Client::new(&emu);
    let id = create_contact(&c, "dup@x.example").await;
    let r = c
        .post(
            "/crm/v3/objects/contacts",
            json!({"properties": {"email": "DUP@x.example"}}),
        )
        .await;
    assert_eq!(r.status, 409);
    assert_error_shape(&r.body, "CONFLICT");
    assert_eq!(
        r.body["message"],
        format!("Contact already exists. Existing ID: {id}")
    );
    emu.shutdown().await;
}

#[tokio::test]
async fn unknown_property_and_bad_number_get_validation_errors() {
    let emu = start().await;
    let c = Client::new(&emu);
    let r = c
        .post(
            "/crm/v3/objects/contacts",
            json!({"properties": {"testproperty": "x"}}),
        )
        .await;
    assert_eq!(r.status, 400);
    assert_error_shape(&r.body, "VALIDATION_ERROR");
    let msg = r.body["message"].as_str().unwrap();
    assert!(
        msg.starts_with("Property values were not valid: [{"),
        "{msg}"
    );
    assert!(
        msg.contains(r#"\"testproperty\" does not exist"#) || msg.contains("PROPERTY_DOESNT_EXIST"),
        "{msg}"
    );
    assert_eq!(r.body["errors"][0]["code"], "PROPERTY_DOESNT_EXIST");
    assert_eq!(
        r.body["errors"][0]["message"],
        "Property \"testproperty\" does not exist"
    );
    assert_eq!(
        r.body["errors"][0]["context"]["propertyName"],
        json!(["testproperty"])
    );
    let r = c
        .post(
            "/crm/v3/objects/companies",
            json!({"properties": {"name": "A", "numberofemployees": "many"}}),
        )
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(r.body["errors"][0]["code"], "INVALID_INTEGER");
    assert_eq!(
        r.body["errors"][0]["context"]["propertyName"],
        json!(["numberofemployees"])
    );
    let r = c
        .post(
            "/crm/v3/objects/contacts",
            json!({"properties": {"lifecyclestage": "nonsense"}}),
        )
        .await;
    assert_eq!(r.body["errors"][0]["code"], "INVALID_OPTION");
    let r = c
        .post(
            "/crm/v3/objects/contacts",
            json!({"properties": {"hs_object_id": "5"}}),
        )
        .await;
    assert_eq!(r.status, 400);
    emu.shutdown().await;
}

#[tokio::test]
async fn archive_answers_204_and_archived_list_returns_only_archived() {
    let emu = start().await;
    let c = Client::new(&emu);
    let a = create_contact(&c, "a@x.example").await;
    let _b = create_contact(&c, "b@x.example").await;
    let r = c.delete(&format!("/crm/v3/objects/contacts/{a}")).await;
    assert_eq!(r.status, 204);
    assert_eq!(
        c.get(&format!("/crm/v3/objects/contacts/{a}")).await.status,
        404
    );
    let r = c.get("/crm/v3/objects/contacts?archived=true").await;
    let results = r.body["results"].as_array().unwrap();
    assert_eq!(results.len(), 1);
    assert_eq!(results[0]["id"], a.as_str());
    assert_eq!(results[0]["archived"], true);
    assert!(results[0]["archivedAt"].is_string());
    let live = c.get("/crm/v3/objects/contacts").await;
    assert_eq!(live.body["results"].as_array().unwrap().len(), 1);
    assert_eq!(
        c.delete("/crm/v3/objects/contacts/424242").await.status,
        204
    );
    emu.shutdown().await;
}

#[tokio::test]
async fn list_pages_with_after_and_omits_paging_on_the_last_page() {
    let emu = start().await;
    let c = Client::new(&emu);
    for i in 0..3 {
        create_contact(&c, &format!("p{i}@x.example")).await;
    }
    let r = c.get("/crm/v3/objects/contacts?limit=2").await;
    assert_eq!(r.body["results"].as_array().unwrap().len(), 2);
    let after = r.body["paging"]["next"]["after"]
        .as_str()
        .unwrap()
        .to_owned();
    let r2 = c
        .get(&format!("/crm/v3/objects/contacts?limit=2&after={after}"))
        .await;
    assert_eq!(r2.body["results"].as_array().unwrap().len(), 1);
    assert!(r2.body.get("paging").is_none());
    emu.shutdown().await;
}

#[tokio::test]
async fn batch_create_returns_201_and_batch_read_207_for_missing_ids() {
    let emu = start().await;
    let c = Client::new(&emu);
    let r = c
        .post(
            "/crm/v3/objects/contacts/batch/create",
            json!({"inputs": [
        {"properties": {"email": "b1@x.example"}}, {"properties": {"email": "b2@x.example"}}]}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.body["status"], "COMPLETE");
    assert!(r.body["startedAt"].is_string() && r.body["completedAt"].is_string());
    let ids: Vec<String> = r.body["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["id"].as_str().unwrap().to_owned())
        .collect();
    let r = c
        .post(
            "/crm/v3/objects/contacts/batch/read",
            json!({"properties": ["email"], "inputs": [{"id": ids[0]}, {"id": "987654"}]}),
        )
        .await;
    assert_eq!(r.status, 207);
    assert_eq!(r.body["numErrors"], 1);
    let e = &r.body["errors"][0];
    assert_eq!(e["status"], "error");
    assert_eq!(e["category"], "OBJECT_NOT_FOUND");
    assert_eq!(
        e["message"],
        "Could not get some CONTACT objects, they may be deleted or not exist. Check that ids are valid."
    );
    assert_eq!(e["context"]["ids"], json!(["987654"]));
    assert_eq!(r.body["results"][0]["properties"]["email"], "b1@x.example");
    let r = c
        .post(
            "/crm/v3/objects/contacts/batch/read",
            json!({"idProperty": "email", "inputs": [{"id": "b2@x.example"}]}),
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["results"][0]["id"], ids[1].as_str());
    emu.shutdown().await;
}

#[tokio::test]
async fn batch_over_100_inputs_is_rejected() {
    let emu = start().await;
    let c = Client::new(&emu);
    let inputs: Vec<_> = (0..101)
        .map(|i| json!({"properties": {"email": format!("n{i}@x.example")}}))
        .collect();
    let r = c
        .post(
            "/crm/v3/objects/contacts/batch/create",
            json!({"inputs": inputs}),
        )
        .await;
    assert_eq!(r.status, 400);
    assert_error_shape(&r.body, "VALIDATION_ERROR");
    emu.shutdown().await;
}

#[tokio::test]
async fn batch_create_with_a_duplicate_email_fails_whole_request_with_409() {
    let emu = start().await;
    let c = Client::new(&emu);
    let existing = create_contact(&c, "taken@x.example").await;
    let r = c.post("/crm/v3/objects/contacts/batch/create", json!({"inputs": [
        {"properties": {"email": "fresh@x.example"}}, {"properties": {"email": "taken@x.example"}}]})).await;
    assert_eq!(r.status, 409);
    assert_eq!(
        r.body["message"],
        format!("Contact already exists. Existing ID: {existing}")
    );
    let list = c.get("/crm/v3/objects/contacts").await;
    assert_eq!(
        list.body["results"].as_array().unwrap().len(),
        1,
        "nothing else was created"
    );
    emu.shutdown().await;
}

#[tokio::test]
async fn batch_create_with_trace_ids_reports_partial_failure_as_207() {
    let emu = start().await;
    let c = Client::new(&emu);
    let r = c
        .post(
            "/crm/v3/objects/contacts/batch/create",
            json!({"inputs": [
        {"properties": {"email": "ok@x.example"}, "objectWriteTraceId": "549b1c2a9350"},
        {"properties": {"nosuch": "1"}, "objectWriteTraceId": "549b1c2a9351"}]}),
        )
        .await;
    assert_eq!(r.status, 207, "{}", r.body);
    assert_eq!(r.body["results"].as_array().unwrap().len(), 1);
    let e = &r.body["errors"][0];
    assert_eq!(e["category"], "VALIDATION_ERROR");
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .starts_with("Property values were not valid: ")
    );
    assert_eq!(e["context"]["objectWriteTraceId"], json!(["549b1c2a9351"]));
    // Without trace ids the same input fails the whole request.
    let r = c
        .post(
            "/crm/v3/objects/contacts/batch/create",
            json!({"inputs": [
        {"properties": {"email": "ok2@x.example"}}, {"properties": {"nosuch": "1"}}]}),
        )
        .await;
    assert_eq!(r.status, 400);
    emu.shutdown().await;
}

#[tokio::test]
async fn batch_update_reports_missing_ids_and_rejects_duplicate_ids() {
    let emu = start().await;
    let c = Client::new(&emu);
    let id = create_contact(&c, "u@x.example").await;
    let r = c.post("/crm/v3/objects/contacts/batch/update", json!({"inputs": [
        {"id": id, "properties": {"firstname": "U"}}, {"id": "555555", "properties": {"firstname": "V"}}]})).await;
    assert_eq!(r.status, 207, "{}", r.body);
    assert_eq!(r.body["results"][0]["properties"]["firstname"], "U");
    assert_eq!(r.body["errors"][0]["category"], "OBJECT_NOT_FOUND");
    let r = c.post("/crm/v3/objects/contacts/batch/update", json!({"inputs": [
        {"id": id, "properties": {"firstname": "A"}}, {"id": id, "properties": {"firstname": "B"}}]})).await;
    assert_eq!(r.status, 400);
    let r = c
        .post(
            "/crm/v3/objects/contacts/batch/update",
            json!({"inputs": [{"id": id, "properties": {"firstname": "W"}}]}),
        )
        .await;
    assert_eq!(r.status, 200);
    emu.shutdown().await;
}

#[tokio::test]
async fn batch_upsert_by_email_creates_and_updates_with_new_flag() {
    let emu = start().await;
    let c = Client::new(&emu);
    let id = create_contact(&c, "luke@lukesdiner.example").await;
    let r = c.post("/crm/v3/objects/contacts/batch/upsert", json!({"inputs": [
        {"id": "luke@lukesdiner.example", "idProperty": "email", "properties": {"phone": "5555555555"}},
        {"id": "new@lukesdiner.example", "idProperty": "email", "properties": {"firstname": "New"}}]})).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let res = r.body["results"].as_array().unwrap();
    assert_eq!(res[0]["id"], id.as_str());
    assert_eq!(res[0]["new"], false);
    assert_eq!(res[1]["new"], true);
    assert_eq!(res[1]["properties"]["email"], "new@lukesdiner.example");
    emu.shutdown().await;
}

#[tokio::test]
async fn batch_archive_answers_204() {
    let emu = start().await;
    let c = Client::new(&emu);
    let id = create_contact(&c, "gone@x.example").await;
    let r = c
        .post(
            "/crm/v3/objects/contacts/batch/archive",
            json!({"inputs": [{"id": id}, {"id": "1234567"}]}),
        )
        .await;
    assert_eq!(r.status, 204);
    assert_eq!(
        c.get(&format!("/crm/v3/objects/contacts/{id}"))
            .await
            .status,
        404
    );
    emu.shutdown().await;
}

#[tokio::test]
async fn custom_unique_property_works_as_id_property() {
    let emu = start().await;
    let c = Client::new(&emu);
    let r = c.post("/crm/v3/properties/deals", json!({"groupName": "dealinformation", "name": "system_a_unique",
        "label": "Unique ID for System A", "hasUniqueValue": true, "type": "string", "fieldType": "text"})).await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.body["hasUniqueValue"], true);
    assert_eq!(r.body["name"], "system_a_unique");
    let again = c
        .post(
            "/crm/v3/properties/deals",
            json!({"groupName": "dealinformation", "name": "system_a_unique",
        "label": "x", "type": "string", "fieldType": "text"}),
        )
        .await;
    assert_eq!(again.status, 409);
    let up = c.post("/crm/v3/objects/deals/batch/upsert", json!({"inputs": [
        {"id": "abc", "idProperty": "system_a_unique", "properties": {"dealname": "A", "dealstage": "qualifiedtobuy"}}]})).await;
    assert_eq!(up.status, 200, "{}", up.body);
    assert_eq!(up.body["results"][0]["new"], true);
    let id = up.body["results"][0]["id"].as_str().unwrap().to_owned();
    let g = c
        .get("/crm/v3/objects/deals/abc?idProperty=system_a_unique&properties=system_a_unique")
        .await;
    assert_eq!(g.status, 200);
    assert_eq!(g.body["id"], id.as_str());
    let p = c
        .patch(
            "/crm/v3/objects/deals/abc?idProperty=system_a_unique",
            json!({"properties": {"amount": "10"}}),
        )
        .await;
    assert_eq!(p.status, 200);
    let br = c
        .post(
            "/crm/v3/objects/deals/batch/read",
            json!({"idProperty": "system_a_unique", "inputs": [{"id": "abc"}]}),
        )
        .await;
    assert_eq!(br.body["results"][0]["id"], id.as_str());
    let up2 = c
        .post(
            "/crm/v3/objects/deals/batch/upsert",
            json!({"inputs": [
        {"id": "abc", "idProperty": "system_a_unique", "properties": {"amount": "20"}}]}),
        )
        .await;
    assert_eq!(up2.body["results"][0]["new"], false);
    let dup = c.post("/crm/v3/objects/deals", json!({"properties": {"dealname": "B", "dealstage": "closedwon", "system_a_unique": "abc"}})).await;
    assert_eq!(dup.status, 409);
    assert_eq!(
        dup.body["message"],
        format!("Deal already exists. Existing ID: {id}")
    );
    emu.shutdown().await;
}

#[tokio::test]
async fn properties_api_lists_and_validates_definitions() {
    let emu = start().await;
    let c = Client::new(&emu);
    let r = c.get("/crm/v3/properties/contacts").await;
    assert_eq!(r.status, 200);
    assert!(r.body.get("paging").is_none());
    let email = r.body["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "email")
        .unwrap()
        .clone();
    for k in [
        "name",
        "label",
        "type",
        "fieldType",
        "groupName",
        "description",
        "options",
    ] {
        assert!(email.get(k).is_some(), "Property has {k}");
    }
    let g = c.get("/crm/v3/properties/contacts/lastmodifieddate").await;
    assert_eq!(g.body["modificationMetadata"]["readOnlyValue"], true);
    let bad = c.post("/crm/v3/properties/contacts", json!({"name": "x1", "label": "X", "type": "string", "fieldType": "select", "groupName": "g"})).await;
    assert_eq!(bad.status, 400);
    let missing = c
        .post("/crm/v3/properties/contacts", json!({"name": "x2"}))
        .await;
    assert_eq!(missing.status, 400);
    let e = c.post("/crm/v3/properties/contacts", json!({"name": "tier_choice", "label": "Tier", "type": "enumeration", "fieldType": "select", "groupName": "contactinformation",
        "options": [{"label": "Gold", "value": "gold", "hidden": false}]})).await;
    assert_eq!(e.status, 201);
    let ok = c
        .post(
            "/crm/v3/objects/contacts",
            json!({"properties": {"tier_choice": "gold"}}),
        )
        .await;
    assert_eq!(ok.status, 201);
    let no = c
        .post(
            "/crm/v3/objects/contacts",
            json!({"properties": {"tier_choice": "Gold"}}),
        )
        .await;
    assert_eq!(no.status, 400);
    assert_eq!(no.body["errors"][0]["code"], "INVALID_OPTION");
    for (t, ft, good, bad) in [
        ("number", "number", "12.5", "x"),
        ("date", "date", "2024-01-17", "2024-01-17T10:00:00Z"),
        ("datetime", "date", "1705521304281", "yesterday"),
        ("bool", "booleancheckbox", "true", "maybe"),
    ] {
        let name = format!("custom_{t}");
        let r = c.post("/crm/v3/properties/contacts", json!({"name": name, "label": t, "type": t, "fieldType": ft, "groupName": "contactinformation"})).await;
        assert_eq!(r.status, 201, "{t}: {}", r.body);
        assert_eq!(
            c.post(
                "/crm/v3/objects/contacts",
                json!({"properties": {name.clone(): good}})
            )
            .await
            .status,
            201,
            "{t} accepts {good}"
        );
        assert_eq!(
            c.post(
                "/crm/v3/objects/contacts",
                json!({"properties": {name.clone(): bad}})
            )
            .await
            .status,
            400,
            "{t} rejects {bad}"
        );
    }
    emu.shutdown().await;
}

#[tokio::test]
async fn malformed_requests_get_hubspot_error_shapes() {
    let emu = start().await;
    let c = Client::new(&emu);
    let r = c
        .http
        .post(format!("{}/crm/v3/objects/contacts", c.base))
        .bearer_auth(TOKEN)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let b: serde_json::Value = r.json().await.unwrap();
    assert_error_shape(&b, "VALIDATION_ERROR");
    let r = c.get("/crm/v3/objects/widgets").await;
    assert_eq!(r.status, 400);
    assert_eq!(
        r.body["message"],
        "Unable to infer object type from: widgets"
    );
    let r = c.get("/crm/v3/nothing/here").await;
    assert_eq!(r.status, 404);
    assert_error_shape(&r.body, "OBJECT_NOT_FOUND");
    let long = format!("/crm/v3/objects/contacts?properties={}", "a".repeat(20_000));
    let r = c.get(&long).await;
    assert_eq!(r.status, 414);
    let big = "x".repeat(11 * 1024 * 1024);
    let r = c
        .http
        .post(format!("{}/crm/v3/objects/contacts", c.base))
        .bearer_auth(TOKEN)
        .body(big)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    let b: serde_json::Value = r.json().await.unwrap();
    assert_eq!(b["status"], "error");
    let r = c
        .post(
            "/crm/v3/objects/contacts/batch/read",
            json!({"inputs": "nope"}),
        )
        .await;
    assert_eq!(r.status, 400);
    emu.shutdown().await;
}

#[tokio::test]
async fn merge_creates_a_new_id_and_old_ids_resolve_to_it() {
    let emu = start().await;
    let c = Client::new(&emu);
    let a = c
        .post(
            "/crm/v3/objects/contacts",
            json!({"properties": {"email": "a@m.example", "firstname": "Ann"}}),
        )
        .await
        .body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let b = c
        .post(
            "/crm/v3/objects/contacts",
            json!({"properties": {"email": "b@m.example", "lastname": "Lee"}}),
        )
        .await
        .body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = c
        .post(
            "/crm/v3/objects/contacts/merge",
            json!({"primaryObjectId": a, "objectIdToMerge": b}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let new_id = r.body["id"].as_str().unwrap().to_owned();
    assert_ne!(new_id, a);
    assert_ne!(new_id, b);
    let g = c.get(&format!("/crm/v3/objects/contacts/{a}?properties=hs_merged_object_ids,hs_additional_emails,email,lastname")).await;
    assert_eq!(g.status, 200);
    assert_eq!(g.body["id"], new_id.as_str());
    let merged = g.body["properties"]["hs_merged_object_ids"]
        .as_str()
        .unwrap();
    assert!(
        merged.split(';').any(|x| x == a) && merged.split(';').any(|x| x == b),
        "{merged}"
    );
    assert_eq!(g.body["properties"]["email"], "a@m.example");
    assert_eq!(g.body["properties"]["hs_additional_emails"], "b@m.example");
    assert_eq!(g.body["properties"]["lastname"], "Lee");
    let p = c
        .patch(
            &format!("/crm/v3/objects/contacts/{b}"),
            json!({"properties": {"firstname": "Anne"}}),
        )
        .await;
    assert_eq!(p.status, 200);
    assert_eq!(p.body["id"], new_id.as_str());
    // The secondary email cannot be reused.
    let dup = c
        .post(
            "/crm/v3/objects/contacts",
            json!({"properties": {"email": "b@m.example"}}),
        )
        .await;
    assert_eq!(dup.status, 409);
    emu.shutdown().await;
}

#[tokio::test]
async fn merge_keeps_the_primary_id_when_configured() {
    let emu = start().await;
    emu.admin()
        .update_settings(|s| s.merge_creates_new_id = false);
    let c = Client::new(&emu);
    let a = create_contact(&c, "k1@x.example").await;
    let b = create_contact(&c, "k2@x.example").await;
    let r = c
        .post(
            "/crm/v3/objects/contacts/merge",
            json!({"primaryObjectId": a, "objectIdToMerge": b}),
        )
        .await;
    assert_eq!(r.body["id"], a.as_str());
    assert_eq!(
        c.get(&format!("/crm/v3/objects/contacts/{b}")).await.body["id"],
        a.as_str()
    );
    emu.shutdown().await;
}

#[tokio::test]
async fn associations_v3_on_create_and_v4_reads() {
    let emu = start().await;
    let c = Client::new(&emu);
    let co = c
        .post(
            "/crm/v3/objects/companies",
            json!({"properties": {"name": "Dragonfly"}}),
        )
        .await
        .body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = c.post("/crm/v3/objects/contacts", json!({"properties": {"email": "s@x.example"},
        "associations": [{"to": {"id": co}, "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 1}]}]})).await;
    assert_eq!(r.status, 201, "{}", r.body);
    let ct = r.body["id"].as_str().unwrap().to_owned();
    let g = c
        .get(&format!(
            "/crm/v3/objects/contacts/{ct}?associations=companies"
        ))
        .await;
    let res = g.body["associations"]["companies"]["results"]
        .as_array()
        .unwrap();
    let types: Vec<&str> = res.iter().map(|x| x["type"].as_str().unwrap()).collect();
    assert!(
        types.contains(&"contact_to_company") && types.contains(&"contact_to_company_unlabeled"),
        "{types:?}"
    );
    assert!(res.iter().all(|x| x["id"] == co.as_str()));
    let l = c
        .get(&format!(
            "/crm/v4/objects/contacts/{ct}/associations/companies"
        ))
        .await;
    assert_eq!(l.status, 200);
    let first = &l.body["results"][0];
    assert_eq!(first["toObjectId"], co.parse::<u64>().unwrap());
    let type_ids: Vec<u64> = first["associationTypes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["typeId"].as_u64().unwrap())
        .collect();
    assert!(
        type_ids.contains(&1) && type_ids.contains(&279),
        "{type_ids:?}"
    );
    let back = c
        .get(&format!(
            "/crm/v4/objects/companies/{co}/associations/contacts"
        ))
        .await;
    let back_ids: Vec<u64> = back.body["results"][0]["associationTypes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["typeId"].as_u64().unwrap())
        .collect();
    assert!(
        back_ids.contains(&280) && back_ids.contains(&2),
        "{back_ids:?}"
    );
    let deal = c
        .post(
            "/crm/v3/objects/deals",
            json!({"properties": {"dealname": "D", "dealstage": "closedwon"}}),
        )
        .await
        .body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let put = c
        .call(
            "PUT",
            &format!("/crm/v4/objects/deals/{deal}/associations/default/contacts/{ct}"),
            None,
        )
        .await;
    assert_eq!(put.status, 200, "{}", put.body);
    assert_eq!(
        put.body["results"][0]["associationSpec"]["associationTypeId"],
        3
    );
    let br = c
        .post(
            "/crm/v4/associations/contacts/deals/batch/read",
            json!({"inputs": [{"id": ct}]}),
        )
        .await;
    assert_eq!(br.status, 200, "{}", br.body);
    assert_eq!(
        br.body["results"][0]["to"][0]["associationTypes"][0]["typeId"],
        4
    );
    let del = c
        .delete(&format!(
            "/crm/v4/objects/contacts/{ct}/associations/deals/{deal}"
        ))
        .await;
    assert_eq!(del.status, 204);
    let br = c
        .post(
            "/crm/v4/associations/contacts/deals/batch/read",
            json!({"inputs": [{"id": ct}]}),
        )
        .await;
    assert_eq!(br.status, 207);
    let bc = c.post("/crm/v4/associations/deals/companies/batch/create", json!({"inputs": [{"from": {"id": deal}, "to": {"id": co}, "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 5}]}]})).await;
    assert_eq!(bc.status, 201, "{}", bc.body);
    assert_eq!(bc.body["results"][0]["labels"], json!(["Primary"]));
    emu.shutdown().await;
}

#[tokio::test]
async fn gdpr_delete_removes_the_contact_for_good() {
    let emu = start().await;
    let c = Client::new(&emu);
    let id = create_contact(&c, "forget@x.example").await;
    let r = c
        .post(
            "/crm/v3/objects/contacts/gdpr-delete",
            json!({"objectId": "forget@x.example", "idProperty": "email"}),
        )
        .await;
    assert_eq!(r.status, 204);
    assert_eq!(
        c.get(&format!("/crm/v3/objects/contacts/{id}"))
            .await
            .status,
        404
    );
    assert_eq!(
        c.get(&format!("/crm/v3/objects/contacts/{id}?archived=true"))
            .await
            .status,
        404
    );
    assert_eq!(
        c.post(
            "/crm/v3/objects/companies/gdpr-delete",
            json!({"objectId": "1"})
        )
        .await
        .status,
        404
    );
    emu.shutdown().await;
}

#[tokio::test]
async fn properties_batch_read_reports_unknown_names() {
    let emu = start().await;
    let c = Client::new(&emu);
    let r = c
        .post(
            "/crm/v3/properties/contacts/batch/read",
            json!({"inputs": [{"name": "email"}, {"name": "nope"}]}),
        )
        .await;
    assert_eq!(r.status, 207);
    assert_eq!(r.body["results"][0]["name"], "email");
    assert_eq!(r.body["errors"][0]["category"], "OBJECT_NOT_FOUND");
    emu.shutdown().await;
}

#[tokio::test]
async fn odd_paths_and_escapes_never_break_the_server() {
    let emu = start().await;
    let c = Client::new(&emu);
    for path in [
        "/crm/v3/objects/contacts/%a%C3%A9",
        "/crm/v3/objects/%",
        "/crm/v3/objects/contacts/%ZZ",
        "/%E2%82%AC",
        "/crm/v3/objects/contacts/1?properties=%ff",
    ] {
        let r = c.get(path).await;
        assert!(
            r.status == 400 || r.status == 404 || r.status == 200,
            "{path}: {}",
            r.status
        );
        assert_eq!(r.body["status"], "error", "{path}: {}", r.body);
    }
    let r = c.post("/crm/v3/objects/contacts/search", json!({"filterGroups": [{"filters": [{"propertyName": "email", "operator": "CONTAINS_TOKEN", "value": "*é*ü"}]}]})).await;
    assert_eq!(r.status, 200);
    emu.shutdown().await;
}
