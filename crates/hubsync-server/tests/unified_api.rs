//! The unified CRM API over real HTTP: every resource and verb, pagination, writes that wait
//! for HubSpot, filters on the mirror and through to HubSpot, portal isolation, API keys,
//! rate-limit headers and the error shape.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod unified_support;

use std::time::Duration;

use hubsync_core::ObjectType;
use hubsync_emulator::{Faults, ObjectKind};
use hubsync_server::unified::remote::search_groups;
use hubsync_server::unified::{UnifiedConfig, hash_key};
use serde_json::{Value, json};
use unified_support::*;

fn samples() -> [(&'static str, Value, Value); 3] {
    [
        (
            "contacts",
            json!({"first_name": "Ada", "last_name": "Lovelace", "email_addresses": ["ada@example.com"],
                   "custom_fields": {"arr__c": "60000"}}),
            json!({"first_name": "Augusta", "last_name": null}),
        ),
        (
            "companies",
            json!({"name": "Acme", "domain": "acme.example", "employee_count": 50}),
            json!({"name": "Acme Corp", "employee_count": null}),
        ),
        (
            "deals",
            json!({"name": "Big deal", "amount": 1000, "stage": "appointmentscheduled", "close_date": "2026-12-31"}),
            json!({"name": "Bigger deal", "amount": 2500}),
        ),
    ]
}

fn ids(page: &Value) -> Vec<String> {
    page["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn every_resource_creates_reads_lists_updates_and_deletes() {
    let h = start().await;
    for (resource, body, patch) in samples() {
        let path = format!("/unified/crm/{resource}");
        let created = h.post(&path, body.clone()).await;
        assert_eq!(created.status, 201, "{resource}: {}", created.body);
        let id = created.body["id"].as_str().unwrap().to_owned();
        for (k, v) in body.as_object().unwrap() {
            assert_eq!(&created.body[k], v, "{resource}.{k}");
        }
        assert_eq!(created.body["sync"]["status"], "pending");
        assert_eq!(created.body["hubspot_id"], Value::Null);
        assert!(created.body["created_at"].as_str().unwrap().ends_with('Z'));

        let got = h.get(&format!("{path}/{id}")).await;
        assert_eq!(got.status, 200);
        assert_eq!(got.body, created.body);

        let listed = h.get(&path).await;
        assert_eq!(listed.status, 200);
        assert_eq!(ids(&listed.body), vec![id.clone()]);
        assert_eq!(listed.body["next_cursor"], Value::Null);

        let updated = h.patch(&format!("{path}/{id}"), patch.clone()).await;
        assert_eq!(updated.status, 200, "{resource}: {}", updated.body);
        for (k, v) in patch.as_object().unwrap() {
            if v.is_null() {
                assert!(updated.body.get(k).is_none(), "{resource}.{k} cleared");
            } else {
                assert_eq!(&updated.body[k], v, "{resource}.{k}");
            }
        }

        let deleted = h.delete(&format!("{path}/{id}")).await;
        assert_eq!(deleted.status, 200, "{}", deleted.body);
        assert_eq!(deleted.body["deleted"], true);
        assert_eq!(h.get(&format!("{path}/{id}")).await.status, 404);
        assert_eq!(h.delete(&format!("{path}/{id}")).await.status, 404);
        assert!(ids(&h.get(&path).await.body).is_empty());
    }
}

#[tokio::test]
async fn patch_changes_only_the_fields_given_and_null_clears() {
    let h = start().await;
    let created = h
        .post(
            "/unified/crm/contacts",
            json!({"first_name": "Ada", "title": "Countess", "email_addresses": ["ada@example.com"],
                   "custom_fields": {"arr__c": "5", "tier__c": "gold"}}),
        )
        .await;
    let path = format!(
        "/unified/crm/contacts/{}",
        created.body["id"].as_str().unwrap()
    );
    let r = h
        .patch(
            &path,
            json!({"title": null, "custom_fields": {"arr__c": null}}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["first_name"], "Ada");
    assert!(r.body.get("title").is_none());
    assert_eq!(r.body["custom_fields"], json!({"tier__c": "gold"}));
    let r = h.patch(&path, json!({"email_addresses": []})).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.get("email_addresses").is_none());
    // An empty patch changes nothing.
    let again = h.patch(&path, json!({})).await;
    assert_eq!(again.status, 200);
    assert_eq!(again.body["updated_at"], r.body["updated_at"]);
}

#[tokio::test]
async fn the_api_works_the_same_on_a_postgresql_store() {
    let Some(mut h) = start_pg().await else {
        return;
    };
    h.create_property(ObjectType::Contacts, "arr__c", false)
        .await;
    h.run_outbound();
    for (resource, body, patch) in samples() {
        let path = format!("/unified/crm/{resource}");
        let created = h.post(&path, body.clone()).await;
        assert_eq!(created.status, 201, "{resource}: {}", created.body);
        let one = format!("{path}/{}", created.body["id"].as_str().unwrap());
        assert_eq!(h.get(&one).await.body, created.body);
        let updated = h.patch(&format!("{one}?wait=synced"), patch).await;
        assert_eq!(updated.status, 200, "{resource}: {}", updated.body);
        assert_eq!(updated.body["sync"]["status"], "synced");
        assert_eq!(ids(&h.get(&path).await.body).len(), 1);
        assert_eq!(h.delete(&one).await.status, 200);
        assert!(ids(&h.get(&path).await.body).is_empty());
    }
    let c = three_contacts(&h).await;
    let page = h
        .get("/unified/crm/contacts?first_name=John&email=john@b.example&updated_after=2020-01-01T00:00:00Z")
        .await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert_eq!(ids(&page.body), vec![c[1].clone()]);
    let first = h.get("/unified/crm/contacts?limit=2").await;
    let cursor = first.body["next_cursor"].as_str().unwrap();
    let second = h
        .get(&format!("/unified/crm/contacts?limit=2&cursor={cursor}"))
        .await;
    assert_eq!(ids(&second.body), vec![c[2].clone()]);
    // Other portals' keys see nothing of it.
    let r = h
        .call_as(
            &h.other_key,
            OTHER_PORTAL,
            "GET",
            "/unified/crm/contacts",
            None,
        )
        .await;
    assert!(ids(&r.body).is_empty());
}

#[tokio::test]
async fn app_writes_through_the_api_are_captured_into_the_outbox() {
    let h = start().await;
    let created = h
        .post("/unified/crm/contacts", json!({"first_name": "Queued"}))
        .await;
    assert_eq!(created.status, 201);
    let depths = h.engine.store.queue_depths(PORTAL).await.unwrap();
    assert_eq!(depths.outbox, 1);
}

#[tokio::test]
async fn pages_follow_next_cursor_to_the_end() {
    let h = start().await;
    let mut created = Vec::new();
    for i in 0..5 {
        let r = h
            .post(
                "/unified/crm/contacts",
                json!({"first_name": format!("P{i}")}),
            )
            .await;
        created.push(r.body["id"].as_str().unwrap().to_owned());
    }
    let mut seen = Vec::new();
    let mut sizes = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/unified/crm/contacts?limit=2&cursor={c}"),
            None => "/unified/crm/contacts?limit=2".to_owned(),
        };
        let page = h.get(&path).await;
        assert_eq!(page.status, 200, "{}", page.body);
        let page_ids = ids(&page.body);
        sizes.push(page_ids.len());
        seen.extend(page_ids);
        match page.body["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    assert_eq!(sizes, vec![2, 2, 1]);
    assert_eq!(seen, created);
    // The default page holds them all.
    assert_eq!(ids(&h.get("/unified/crm/contacts").await.body), created);
}

#[tokio::test]
async fn wait_synced_answers_once_hubspot_holds_the_write() {
    let mut h = start().await;
    h.run_outbound();
    let created = h
        .post(
            "/unified/crm/contacts?wait=synced",
            json!({"first_name": "Grace", "email_addresses": ["grace@example.com"]}),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    assert_eq!(created.body["sync"]["status"], "synced");
    let id = created.body["id"].as_str().unwrap().to_owned();
    let hubspot_id: u64 = created.body["hubspot_id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let remote = h
        .emulator
        .admin()
        .get(PORTAL.get(), ObjectKind::Contact, hubspot_id)
        .unwrap()
        .unwrap();
    assert_eq!(remote["properties"]["firstname"], "Grace");

    let updated = h
        .patch(
            &format!("/unified/crm/contacts/{id}?wait=synced"),
            json!({"first_name": "Grace B."}),
        )
        .await;
    assert_eq!(updated.status, 200, "{}", updated.body);
    assert_eq!(updated.body["sync"]["status"], "synced");
    let remote = h
        .emulator
        .admin()
        .get(PORTAL.get(), ObjectKind::Contact, hubspot_id)
        .unwrap()
        .unwrap();
    assert_eq!(remote["properties"]["firstname"], "Grace B.");

    let deleted = h
        .delete(&format!("/unified/crm/contacts/{id}?wait=synced"))
        .await;
    assert_eq!(deleted.status, 200, "{}", deleted.body);
    assert_eq!(deleted.body["sync"]["status"], "synced");
    assert_eq!(
        h.emulator
            .admin()
            .count(PORTAL.get(), ObjectKind::Contact)
            .unwrap(),
        0
    );
}

#[tokio::test]
async fn a_write_hubspot_refuses_answers_422_with_hubspots_reason() {
    let mut h = start().await;
    h.run_outbound();
    let r = h
        .post(
            "/unified/crm/contacts?wait=synced",
            json!({"first_name": "Bad", "custom_fields": {"no_such_property": "x"}}),
        )
        .await;
    assert_eq!(r.status, 422, "{}", r.body);
    assert_eq!(r.code(), "sync_failed");
    let record = &r.body["record"];
    assert_eq!(record["sync"]["status"], "failed");
    let reason = record["sync"]["reason"].as_str().unwrap();
    assert!(reason.contains("no_such_property"), "{reason}");
    assert!(
        r.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains(reason)
    );
    // The stored record shows the failure too.
    let id = record["id"].as_str().unwrap();
    let got = h.get(&format!("/unified/crm/contacts/{id}")).await;
    assert_eq!(got.body["sync"]["status"], "failed");
    assert_eq!(got.body["sync"]["reason"], reason);
}

#[tokio::test]
async fn a_wait_that_runs_out_answers_202_with_the_record_pending() {
    let h = start_with(UnifiedConfig {
        wait_timeout: Duration::from_millis(200),
        wait_poll: Duration::from_millis(20),
        auth_cache_ttl: Duration::ZERO,
        remote_max_wait: Duration::from_secs(1),
    })
    .await;
    let r = h
        .post(
            "/unified/crm/contacts?wait=synced",
            json!({"first_name": "Later"}),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    assert_eq!(r.body["sync"]["status"], "pending");
}

async fn three_contacts(h: &Harness) -> Vec<String> {
    let mut out = Vec::new();
    for (first, last, email, arr) in [
        ("John", "Smith", "john@a.example", "60000"),
        ("John", "Doe", "john@b.example", "40000"),
        ("Jane", "Smith", "jane@a.example", "70000"),
    ] {
        let r = h
            .post(
                "/unified/crm/contacts",
                json!({"first_name": first, "last_name": last, "email_addresses": [email],
                       "custom_fields": {"arr__c": arr}}),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.body);
        out.push(r.body["id"].as_str().unwrap().to_owned());
    }
    out
}

#[tokio::test]
async fn filters_on_the_mirror_combine_with_and() {
    let h = start().await;
    let before = "2020-01-01T00:00:00Z";
    let c = three_contacts(&h).await;
    let q = |query: &str| {
        let path = format!("/unified/crm/contacts?{query}");
        let query = query.to_owned();
        let h = &h;
        async move {
            let r = h.get(&path).await;
            assert_eq!(r.status, 200, "{query}: {}", r.body);
            ids(&r.body)
        }
    };
    assert_eq!(q("first_name=John").await, vec![c[0].clone(), c[1].clone()]);
    assert_eq!(q("email=john@a.example").await, vec![c[0].clone()]);
    assert_eq!(
        q("custom_fields.arr__c=60000&first_name=John").await,
        vec![c[0].clone()]
    );
    assert_eq!(
        q("last_name=Smith&first_name[neq]=John").await,
        vec![c[2].clone()]
    );
    assert_eq!(q("first_name[in]=Jane,Nobody").await, vec![c[2].clone()]);
    assert_eq!(q(&format!("updated_after={before}")).await.len(), 3);
    assert!(q("updated_after=2999-01-01T00:00:00Z").await.is_empty());
    assert!(q("title[is_null]=true").await.len() == 3);
}

#[tokio::test]
async fn numeric_ranges_on_custom_fields_compare_as_numbers_on_the_mirror() {
    let h = start().await;
    let c = three_contacts(&h).await;
    let r = h
        .get("/unified/crm/contacts?custom_fields.arr__c[gte]=50000")
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(ids(&r.body), vec![c[0].clone(), c[2].clone()]);
    let r = h
        .get("/unified/crm/contacts?first_name=John&custom_fields.arr__c[gte]=50000")
        .await;
    assert_eq!(ids(&r.body), vec![c[0].clone()]);
}

#[test]
fn remote_filters_translate_to_hubspots_documented_filter_groups() {
    let mappings = hubsync_mapping::Mappings::embedded().unwrap();
    let rules = mappings.filter_rules(ObjectType::Contacts);
    let groups = |params: &[(&str, &str)]| {
        let filters = rules.parse(params.iter().copied()).unwrap();
        serde_json::to_value(search_groups(rules.to_filter_groups(&filters).unwrap()).unwrap())
            .unwrap()
    };
    // api-digest §2, the request body example: one group, firstname EQ and lastname NEQ.
    assert_eq!(
        groups(&[("first_name", "Alice"), ("last_name[neq]", "Smith")]),
        json!([{"filters": [
            {"propertyName": "firstname", "operator": "EQ", "value": "Alice"},
            {"propertyName": "lastname", "operator": "NEQ", "value": "Smith"}]}])
    );
    // §2: `{"propertyName": "email", "operator": "NOT_HAS_PROPERTY"}`.
    assert_eq!(
        groups(&[("email_addresses[is_null]", "true")]),
        json!([{"filters": [{"propertyName": "email", "operator": "NOT_HAS_PROPERTY"}]}])
    );
    // §2, dates: BETWEEN with epoch-ms strings "1579514400000" and "1642672800000"; contacts
    // search on `lastmodifieddate`.
    assert_eq!(
        groups(&[(
            "updated_at[between]",
            "2020-01-20T10:00:00Z,2022-01-20T10:00:00Z"
        )]),
        json!([{"filters": [{"propertyName": "lastmodifieddate", "operator": "BETWEEN",
            "value": "1579514400000", "highValue": "1642672800000"}]}])
    );
    // §2: string IN values must be lower case.
    assert_eq!(
        groups(&[("first_name[in]", "Alice,BOB")]),
        json!([{"filters": [{"propertyName": "firstname", "operator": "IN", "values": ["alice", "bob"]}]}])
    );
    // Aliases and custom properties.
    assert_eq!(
        groups(&[
            ("email", "a@b.example"),
            ("custom_fields.arr__c[gte]", "50000"),
            ("updated_after", "2020-01-20T10:00:00Z")
        ]),
        json!([{"filters": [
            {"propertyName": "email", "operator": "EQ", "value": "a@b.example"},
            {"propertyName": "arr__c", "operator": "GTE", "value": "50000"},
            {"propertyName": "lastmodifieddate", "operator": "GT", "value": "1579514400000"}]}])
    );
    // Nothing to filter: no groups (a list page, not a search).
    assert_eq!(groups(&[]), json!([]));
}

#[tokio::test]
async fn remote_reads_go_through_to_hubspot_with_filter_groups() {
    let h = start().await;
    h.create_property(ObjectType::Contacts, "arr__c", true)
        .await;
    let admin = h.emulator.admin();
    let mut hubspot_ids = Vec::new();
    for (first, email, arr) in [
        ("Alice", "alice@x.example", "60000"),
        ("Bob", "bob@x.example", "40000"),
        ("Alice", "alice2@y.example", "10"),
    ] {
        hubspot_ids.push(
            admin
                .create(
                    PORTAL.get(),
                    ObjectKind::Contact,
                    [("firstname", first), ("email", email), ("arr__c", arr)],
                    hubsync_emulator::DEFAULT_USER_ID,
                )
                .unwrap(),
        );
    }
    // The mirror has none of them.
    assert!(ids(&h.get("/unified/crm/contacts").await.body).is_empty());

    let r = h
        .get("/unified/crm/contacts?source=remote&first_name=Alice")
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let results = r.body["results"].as_array().unwrap();
    assert_eq!(results.len(), 2);
    assert!(results.iter().all(|c| c["first_name"] == "Alice"));
    assert!(
        results
            .iter()
            .all(|c| c["id"].is_null() && c["sync"]["status"] == "pending")
    );

    let r = h
        .get("/unified/crm/contacts?source=remote&first_name=Alice&custom_fields.arr__c[gte]=50000")
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let results = r.body["results"].as_array().unwrap();
    assert_eq!(results.len(), 1);
    assert_eq!(results[0]["email_addresses"], json!(["alice@x.example"]));
    assert_eq!(results[0]["custom_fields"]["arr__c"], "60000");
    assert_eq!(results[0]["hubspot_id"], hubspot_ids[0].to_string());

    // Unfiltered: list pages, followed by cursor.
    let mut seen = Vec::new();
    let mut path = "/unified/crm/contacts?source=remote&limit=2".to_owned();
    loop {
        let page = h.get(&path).await;
        assert_eq!(page.status, 200, "{}", page.body);
        for r in page.body["results"].as_array().unwrap() {
            seen.push(r["hubspot_id"].as_str().unwrap().parse::<u64>().unwrap());
        }
        match page.body["next_cursor"].as_str() {
            Some(c) => path = format!("/unified/crm/contacts?source=remote&limit=2&cursor={c}"),
            None => break,
        }
    }
    seen.sort_unstable();
    assert_eq!(seen, hubspot_ids);
}

#[tokio::test]
async fn a_filter_hubspot_cannot_express_is_refused_naming_it() {
    let h = start().await;
    let r = h
        .get("/unified/crm/contacts?source=remote&first_name=Ann&phone=12345")
        .await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(r.code(), "filter_not_supported");
    assert_eq!(r.body["error"]["field"], "phone");
    // The mirror can answer it.
    assert_eq!(h.get("/unified/crm/contacts?phone=12345").await.status, 200);
}

#[tokio::test]
async fn remote_get_reads_hubspots_current_state() {
    let mut h = start().await;
    h.run_outbound();
    let created = h
        .post(
            "/unified/crm/contacts?wait=synced",
            json!({"first_name": "Linus"}),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    let id = created.body["id"].as_str().unwrap();
    let hubspot_id: u64 = created.body["hubspot_id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    h.emulator
        .admin()
        .update(
            PORTAL.get(),
            ObjectKind::Contact,
            hubspot_id,
            [("firstname", "Linus T.")],
            hubsync_emulator::DEFAULT_USER_ID,
        )
        .unwrap();
    let remote = h
        .get(&format!("/unified/crm/contacts/{id}?source=remote"))
        .await;
    assert_eq!(remote.status, 200, "{}", remote.body);
    assert_eq!(remote.body["first_name"], "Linus T.");
    assert_eq!(remote.body["id"], id);
    let local = h.get(&format!("/unified/crm/contacts/{id}")).await;
    assert_eq!(local.body["first_name"], "Linus");

    // A record that never reached HubSpot has nothing to read there.
    let pending = h
        .post("/unified/crm/companies", json!({"name": "Unsent"}))
        .await;
    let r = h
        .get(&format!(
            "/unified/crm/companies/{}?source=remote",
            pending.body["id"].as_str().unwrap()
        ))
        .await;
    assert!(r.status == 404 || r.status == 200, "{}", r.body);
}

#[tokio::test]
async fn a_remote_read_hubspot_rate_limits_is_passed_on_as_429() {
    let h = start().await;
    h.emulator.admin().set_faults(Faults {
        competing_app_share_pct: 100.0,
        ..Faults::default()
    });
    let r = h.get("/unified/crm/contacts?source=remote").await;
    assert_eq!(r.status, 429, "{}", r.body);
    assert_eq!(r.code(), "rate_limited");
    let retry: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!(retry >= 1);
    for name in ["ratelimit-limit", "ratelimit-remaining", "ratelimit-reset"] {
        r.header(name)
            .unwrap_or_else(|| panic!("{name} missing"))
            .parse::<u64>()
            .unwrap();
    }
    // The mirror still answers.
    assert_eq!(h.get("/unified/crm/contacts").await.status, 200);
}

#[tokio::test]
async fn a_key_never_sees_another_portals_records() {
    let h = start().await;
    let created = h
        .post("/unified/crm/contacts", json!({"first_name": "Mine"}))
        .await;
    let id = created.body["id"].as_str().unwrap().to_owned();
    let one = format!("/unified/crm/contacts/{id}");

    // The other portal's key, on its own portal: the record does not exist there.
    let other = |method: &'static str, path: String, body: Option<Value>| {
        let h = &h;
        async move {
            h.call_as(&h.other_key, OTHER_PORTAL, method, &path, body)
                .await
        }
    };
    let listed = other("GET", "/unified/crm/contacts".into(), None).await;
    assert_eq!(listed.status, 200);
    assert!(ids(&listed.body).is_empty());
    assert_eq!(other("GET", one.clone(), None).await.status, 404);
    assert_eq!(
        other("PATCH", one.clone(), Some(json!({"first_name": "Theirs"})))
            .await
            .status,
        404
    );
    assert_eq!(other("DELETE", one.clone(), None).await.status, 404);

    // The other key, naming our portal: refused, whatever the verb.
    for (method, path, body) in [
        ("GET", "/unified/crm/contacts".to_owned(), None),
        ("GET", one.clone(), None),
        (
            "POST",
            "/unified/crm/contacts".to_owned(),
            Some(json!({"first_name": "X"})),
        ),
        ("PATCH", one.clone(), Some(json!({"first_name": "X"}))),
        ("DELETE", one.clone(), None),
    ] {
        let r = h.call_as(&h.other_key, PORTAL, method, &path, body).await;
        assert_eq!(r.status, 403, "{method} {path}");
        assert_eq!(r.code(), "portal_forbidden");
    }
    // Our key on their portal: refused too.
    let r = h
        .call_as(&h.key, OTHER_PORTAL, "GET", "/unified/crm/contacts", None)
        .await;
    assert_eq!(r.status, 403);

    // Untouched.
    let got = h.get(&one).await;
    assert_eq!(got.status, 200);
    assert_eq!(got.body["first_name"], "Mine");
    assert_eq!(ids(&h.get("/unified/crm/contacts").await.body), vec![id]);
}

#[tokio::test]
async fn requests_without_a_valid_key_or_portal_are_refused() {
    let h = start().await;
    let url = format!("{}/unified/crm/contacts", h.base);

    let r = h
        .send(h.http.get(&url).header("x-hubsync-portal", "62515"))
        .await;
    assert_eq!(r.status, 401);
    assert_eq!(r.code(), "unauthorized");
    assert!(r.header("www-authenticate").unwrap().starts_with("Bearer"));

    let r = h
        .call_as(
            "hsk_not-a-key",
            PORTAL,
            "GET",
            "/unified/crm/contacts",
            None,
        )
        .await;
    assert_eq!(r.status, 401);

    let r = h.send(h.http.get(&url).bearer_auth(&h.key)).await;
    assert_eq!(r.status, 400);
    assert_eq!(r.code(), "missing_portal");

    let r = h
        .send(
            h.http
                .get(format!("{url}?portal_id=62515"))
                .bearer_auth(&h.key),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);

    let r = h
        .send(
            h.http
                .get(format!("{url}?portal_id=77001"))
                .bearer_auth(&h.key)
                .header("x-hubsync-portal", "62515"),
        )
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(r.code(), "conflicting_portal");

    // A key scoped to a portal hubsync does not know.
    let ghost = hubsync_core::PortalId(999);
    let key = hubsync_server::unified::create_api_key(h.engine.store.as_ref(), "ghost", &[ghost])
        .await
        .unwrap();
    let r = h
        .call_as(&key, ghost, "GET", "/unified/crm/contacts", None)
        .await;
    assert_eq!(r.status, 404);
}

#[tokio::test]
async fn api_keys_are_stored_only_as_their_sha256() {
    let h = start().await;
    assert!(h.key.starts_with("hsk_"));
    let keys = h.engine.store.list_api_keys().await.unwrap();
    assert_eq!(keys.len(), 2);
    for k in &keys {
        assert_ne!(k.key_hash, h.key);
        assert_eq!(k.key_hash.len(), 64);
    }
    let ours = keys
        .iter()
        .find(|k| k.key_hash == hash_key(&h.key))
        .unwrap();
    assert_eq!(ours.portals, vec![PORTAL]);
}

#[tokio::test]
async fn every_answer_for_a_portal_carries_rate_limit_headers() {
    let h = start().await;
    let created = h
        .post("/unified/crm/deals", json!({"name": "Headers"}))
        .await;
    let id = created.body["id"].as_str().unwrap().to_owned();
    for r in [
        created,
        h.get("/unified/crm/deals").await,
        h.get(&format!("/unified/crm/deals/{id}")).await,
        h.get("/unified/crm/deals/424242").await,
        h.get("/unified/crm/deals?limit=500").await,
        h.get("/unified/crm/deals?source=remote").await,
    ] {
        let limit: u32 = r.header("ratelimit-limit").unwrap().parse().unwrap();
        let remaining: u32 = r.header("ratelimit-remaining").unwrap().parse().unwrap();
        let _reset: u64 = r.header("ratelimit-reset").unwrap().parse().unwrap();
        assert!(limit > 0 && remaining <= limit, "{limit} {remaining}");
    }
    // The remote read spent budget; the mirror reads did not.
    let r = h.get("/unified/crm/deals").await;
    let remaining: u32 = r.header("ratelimit-remaining").unwrap().parse().unwrap();
    let limit: u32 = r.header("ratelimit-limit").unwrap().parse().unwrap();
    assert!(remaining < limit);
}

#[tokio::test]
async fn bad_input_gets_a_4xx_in_the_one_error_shape() {
    let h = start().await;
    let created = h
        .post("/unified/crm/contacts", json!({"first_name": "Err"}))
        .await;
    let id = created.body["id"].as_str().unwrap().to_owned();
    let remote_cursor = hex_encode("r1:10");
    type Case<'a> = (
        &'a str,
        String,
        Option<&'a str>,
        u16,
        &'a str,
        Option<&'a str>,
    );
    let cases: Vec<Case> = vec![
        (
            "GET",
            "/unified/crm/contacts?cursor=garbage".into(),
            None,
            400,
            "bad_cursor",
            Some("cursor"),
        ),
        (
            "GET",
            format!("/unified/crm/contacts?cursor={remote_cursor}"),
            None,
            400,
            "bad_cursor",
            Some("cursor"),
        ),
        (
            "GET",
            "/unified/crm/contacts?nope=1".into(),
            None,
            400,
            "unknown_field",
            Some("nope"),
        ),
        (
            "GET",
            "/unified/crm/contacts?first_name[gte]=x".into(),
            None,
            400,
            "unsupported_operator",
            Some("first_name[gte]"),
        ),
        (
            "GET",
            "/unified/crm/contacts?updated_after=yesterday".into(),
            None,
            400,
            "invalid_value",
            Some("updated_after"),
        ),
        (
            "GET",
            "/unified/crm/contacts?limit=101".into(),
            None,
            400,
            "limit_out_of_range",
            Some("limit"),
        ),
        (
            "GET",
            "/unified/crm/contacts?limit=0".into(),
            None,
            400,
            "limit_out_of_range",
            Some("limit"),
        ),
        (
            "GET",
            "/unified/crm/contacts?limit=ten".into(),
            None,
            400,
            "invalid_value",
            Some("limit"),
        ),
        (
            "GET",
            "/unified/crm/contacts?limit=5&limit=6".into(),
            None,
            400,
            "duplicate_parameter",
            Some("limit"),
        ),
        (
            "GET",
            "/unified/crm/contacts?source=sideways".into(),
            None,
            400,
            "invalid_value",
            Some("source"),
        ),
        (
            "GET",
            "/unified/crm/contacts/abc".into(),
            None,
            404,
            "not_found",
            None,
        ),
        (
            "GET",
            "/unified/crm/contacts/999999".into(),
            None,
            404,
            "not_found",
            None,
        ),
        (
            "GET",
            "/unified/crm/tickets".into(),
            None,
            404,
            "not_found",
            None,
        ),
        (
            "GET",
            format!("/unified/crm/contacts/{id}?verbose=1"),
            None,
            400,
            "unknown_parameter",
            Some("verbose"),
        ),
        (
            "PUT",
            "/unified/crm/contacts".into(),
            None,
            405,
            "method_not_allowed",
            None,
        ),
        (
            "POST",
            "/unified/crm/contacts".into(),
            Some("{\"first_name\":"),
            400,
            "malformed_json",
            None,
        ),
        (
            "POST",
            "/unified/crm/contacts".into(),
            Some(""),
            400,
            "malformed_json",
            None,
        ),
        (
            "POST",
            "/unified/crm/contacts".into(),
            Some("[1, 2]"),
            400,
            "invalid_body",
            None,
        ),
        (
            "POST",
            "/unified/crm/contacts".into(),
            Some("{\"nope\": 1}"),
            400,
            "unknown_field",
            Some("nope"),
        ),
        (
            "POST",
            "/unified/crm/contacts".into(),
            Some("{\"email_addresses\": [\"not an email\"]}"),
            400,
            "invalid_value",
            Some("email_addresses"),
        ),
        (
            "POST",
            "/unified/crm/companies".into(),
            Some("{\"employee_count\": \"many\"}"),
            400,
            "invalid_value",
            Some("employee_count"),
        ),
        (
            "POST",
            "/unified/crm/contacts".into(),
            Some("{\"custom_fields\": 5}"),
            400,
            "invalid_value",
            Some("custom_fields"),
        ),
        (
            "POST",
            "/unified/crm/contacts".into(),
            Some("{\"custom_fields\": {\"hs_object_id\": \"5\"}}"),
            400,
            "invalid_value",
            Some("custom_fields.hs_object_id"),
        ),
        (
            "POST",
            "/unified/crm/contacts".into(),
            Some("{\"id\": \"5\"}"),
            400,
            "read_only_field",
            Some("id"),
        ),
        (
            "POST",
            "/unified/crm/contacts?wait=later".into(),
            Some("{}"),
            400,
            "invalid_value",
            Some("wait"),
        ),
        (
            "PATCH",
            format!("/unified/crm/contacts/{id}"),
            Some("{\"sync\": {}}"),
            400,
            "read_only_field",
            Some("sync"),
        ),
        (
            "PATCH",
            "/unified/crm/contacts/999999".into(),
            Some("{\"first_name\": \"x\"}"),
            404,
            "not_found",
            None,
        ),
        (
            "DELETE",
            "/unified/crm/contacts/999999".into(),
            None,
            404,
            "not_found",
            None,
        ),
    ];
    for (method, path, body, status, code, field) in cases {
        let mut req = h
            .http
            .request(method.parse().unwrap(), format!("{}{path}", h.base))
            .bearer_auth(&h.key)
            .header("x-hubsync-portal", PORTAL.to_string());
        if let Some(body) = body {
            req = req
                .header("content-type", "application/json")
                .body(body.to_owned());
        }
        let r = h.send(req).await;
        let what = format!("{method} {path} {body:?}: {}", r.body);
        assert_eq!(r.status, status, "{what}");
        let error = r.body["error"]
            .as_object()
            .unwrap_or_else(|| panic!("{what}"));
        assert_eq!(error.len(), 3, "{what}");
        assert_eq!(error["code"], code, "{what}");
        assert!(!error["message"].as_str().unwrap().is_empty(), "{what}");
        assert_eq!(error["field"].as_str(), field, "{what}");
    }
    // Nothing above wrote anything.
    assert_eq!(ids(&h.get("/unified/crm/contacts").await.body), vec![id]);
}

fn hex_encode(s: &str) -> String {
    s.bytes().map(|b| format!("{b:02x}")).collect()
}
