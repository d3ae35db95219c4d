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
