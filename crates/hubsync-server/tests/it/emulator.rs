//! Against the emulator, an implementation of HubSpot written independently of this crate:
//! the deliveries it signs and posts are accepted and stored, and the rate budget the client
//! spends on it shows on the status page.

use std::time::Duration;

use hubsync_core::ObjectType;
use hubsync_emulator::{Emulator, EmulatorConfig, ObjectKind, PortalConfig};
use hubsync_hubspot::model::ListParams;
use serde_json::Value;

use crate::common::{self, PORTAL, SECRET, TOKEN};

#[tokio::test]
async fn emulator_deliveries_are_stored_and_the_spent_budget_is_shown() {
    // The server's address first: the emulator posts its webhooks there.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let server_url = format!("http://{}", listener.local_addr().expect("addr"));
    let mut portal = PortalConfig::new(PORTAL.get(), 50780459);
    portal.private_app_token = Some(TOKEN.into());
    portal.webhook_target = Some(format!("{server_url}/webhooks/hubspot"));
    portal.webhook_secret = SECRET.into();
    let config = EmulatorConfig {
        portals: vec![portal],
        ..EmulatorConfig::default()
    };
    let emulator = Emulator::start(
        config,
        tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind"),
    )
    .await
    .expect("emulator");
    let server = common::start_on(listener, &server_url, &emulator.base_url(), |c| c).await;

    // A person edits HubSpot: the emulator signs and delivers the events.
    let admin = emulator.admin();
    let id = admin
        .create(
            PORTAL.get(),
            ObjectKind::Contact,
            [("email", "ada@example.com"), ("firstname", "Ada")],
            76023669,
        )
        .expect("create");
    admin
        .update(
            PORTAL.get(),
            ObjectKind::Contact,
            id,
            [("lastname", "Lovelace")],
            76023669,
        )
        .expect("update");
    assert!(
        admin.wait_webhooks_idle(Duration::from_secs(20)).await,
        "the emulator's deliveries were all acknowledged"
    );
    let items = server
        .store()
        .claim_inbox(PORTAL, 100, Duration::from_secs(30), "test")
        .await
        .expect("claim");
    let types: Vec<&str> = items.iter().map(|i| i.subscription_type.as_str()).collect();
    assert!(types.contains(&"contact.creation"), "{types:?}");
    assert!(types.contains(&"contact.propertyChange"), "{types:?}");
    assert!(
        items
            .iter()
            .all(|i| i.object_id.map(|h| h.get()) == Some(id))
    );

    // The client spends budget on the emulator; the status page shows it.
    let api = server
        .engine
        .hubspot
        .get(PORTAL)
        .expect("registered portal");
    for _ in 0..3 {
        api.list_page(
            ObjectType::Contacts,
            &ListParams {
                limit: Some(10),
                after: None,
                properties: vec!["email".to_owned()],
                archived: false,
            },
        )
        .await
        .expect("list");
    }
    let (_, text) = server.get("/status.json").await;
    let report: Value = serde_json::from_str(&text).expect("json");
    let budget = &report["portals"][0]["budget"];
    assert!(
        budget["in_use"].as_u64().is_some_and(|n| n >= 3),
        "{budget}"
    );
    server.stop().await;
    emulator.shutdown().await;
}
