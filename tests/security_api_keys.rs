//! Security: through the real `hubsync serve` process, an API key scoped to one portal can
//! neither read nor change another portal's records — by header, by query parameter, by guessing
//! record ids, or by reading through to HubSpot — and keys that are missing or made up get 401.

mod common;

use std::time::Duration;

use common::{APP, PORTAL, ServeProcess, ServeSpec, TOKEN, WEBHOOK_SECRET};
use hubsync_core::{FieldMap, ObjectType, PortalId};
use hubsync_emulator::{Emulator, EmulatorConfig, PortalConfig, Tier};
use hubsync_store::PortalAuth;
use serde_json::json;

const OTHER: u64 = 62599;
const OTHER_TOKEN: &str = "pat-na1-00000000-other-token";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_scoped_to_one_portal_cannot_touch_another_portals_records() {
    let portals = [(PORTAL, TOKEN), (OTHER, OTHER_TOKEN)]
        .into_iter()
        .map(|(id, token)| {
            let mut p = PortalConfig::new(id, APP);
            p.private_app_token = Some(token.to_owned());
            p.tier = Tier::LimitIncrease;
            p
        })
        .collect();
    let emulator = Emulator::start(
        EmulatorConfig {
            portals,
            ..EmulatorConfig::default()
        },
        tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind"),
    )
    .await
    .expect("emulator");
    let dir = tempfile::tempdir().expect("tempdir");
    let database_url = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("hubsync.db").display()
    );
    let store = hubsync_store::connect(&database_url).await.expect("store");
    store
        .upsert_portal(&common::private_portal(250))
        .await
        .expect("portal");
    let mut other = common::private_portal(250);
    other.portal_id = PortalId(OTHER);
    other.auth = PortalAuth(json!({"kind": "private_app", "token": OTHER_TOKEN}));
    store.upsert_portal(&other).await.expect("other portal");

    let mine = store
        .insert_record(
            PortalId(PORTAL),
            ObjectType::Contacts,
            &FieldMap::from_unified(
                &json!({"first_name": "Mine", "email_addresses": ["mine@a.example"]}),
            ),
        )
        .await
        .expect("insert");
    let theirs = store
        .insert_record(
            PortalId(OTHER),
            ObjectType::Contacts,
            &FieldMap::from_unified(
                &json!({"first_name": "Theirs", "email_addresses": ["theirs@b.example"]}),
            ),
        )
        .await
        .expect("insert");
    let key = hubsync_server::unified::create_api_key(
        store.as_ref(),
        "portal a only",
        &[PortalId(PORTAL)],
    )
    .await
    .expect("key");

    let spec = ServeSpec {
        database_url,
        hubspot_url: emulator.base_url(),
        port: common::free_port(),
        webhook_secret: WEBHOOK_SECRET.to_owned(),
        workdir: dir.path().to_owned(),
        env: vec![],
    };
    let mut serve = ServeProcess::spawn(&spec, 0);
    serve.wait_ready(Duration::from_secs(30)).await;
    let http = reqwest::Client::new();
    let base = format!("{}/unified/crm/contacts", spec.url());
    let send = async |request: reqwest::RequestBuilder| {
        let response = request.send().await.expect("request");
        let status = response.status().as_u16();
        (status, response.text().await.expect("body"))
    };
    let bearer = format!("Bearer {key}");

    // The key works for its own portal, and only its own records are listed.
    let (status, body) = send(
        http.get(&base)
            .header("authorization", &bearer)
            .header("x-hubsync-portal", PORTAL.to_string()),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains("mine@a.example") && !body.contains("theirs@b.example"),
        "{body}"
    );

    // Another portal by header or by query parameter: 403, for reads, read-through and writes.
    let theirs_url = format!("{base}/{}", theirs.local_id.0);
    let attempts = [
        http.get(&base)
            .header("x-hubsync-portal", OTHER.to_string()),
        http.get(format!("{base}?portal_id={OTHER}")),
        http.get(format!("{base}?portal_id={OTHER}&source=remote")),
        http.get(&theirs_url)
            .header("x-hubsync-portal", OTHER.to_string()),
        http.patch(&theirs_url)
            .header("x-hubsync-portal", OTHER.to_string())
            .json(&json!({"first_name": "Owned"})),
        http.delete(&theirs_url)
            .header("x-hubsync-portal", OTHER.to_string()),
        http.post(&base)
            .header("x-hubsync-portal", OTHER.to_string())
            .json(&json!({"first_name": "Planted", "email_addresses": ["planted@b.example"]})),
        // A portal that does not exist looks the same as one that does.
        http.get(&base).header("x-hubsync-portal", "99999999"),
    ];
    for request in attempts {
        let (status, body) = send(request.header("authorization", &bearer)).await;
        assert_eq!(status, 403, "{body}");
        assert!(!body.contains("theirs@b.example"), "{body}");
    }

    // The other portal's record id, asked for under the key's own portal: not found, unchanged.
    for request in [
        http.get(&theirs_url),
        http.patch(&theirs_url)
            .json(&json!({"first_name": "Owned"})),
        http.delete(&theirs_url),
    ] {
        let (status, body) = send(
            request
                .header("authorization", &bearer)
                .header("x-hubsync-portal", PORTAL.to_string()),
        )
        .await;
        assert_eq!(status, 404, "{body}");
        assert!(!body.contains("theirs@b.example"), "{body}");
    }
    // Two portals named at once never reach the other portal's data.
    let (status, body) = send(
        http.get(format!("{base}?portal_id={OTHER}"))
            .header("authorization", &bearer)
            .header("x-hubsync-portal", PORTAL.to_string()),
    )
    .await;
    assert_ne!(
        status, 200,
        "a request naming two portals is refused: {body}"
    );
    assert!(!body.contains("theirs@b.example"), "{body}");

    // No key, a made-up key, a key in the wrong scheme: 401.
    for auth in [
        None,
        Some(
            "Bearer hsk_0000000000000000000000000000000000000000000000000000000000000000"
                .to_owned(),
        ),
        Some(format!("Basic {key}")),
    ] {
        let mut request = http
            .get(&base)
            .header("x-hubsync-portal", PORTAL.to_string());
        if let Some(auth) = auth {
            request = request.header("authorization", auth);
        }
        let (status, body) = send(request).await;
        assert_eq!(status, 401, "{body}");
    }

    let row = store
        .get_record(PortalId(OTHER), ObjectType::Contacts, theirs.local_id)
        .await
        .expect("read")
        .expect("still there");
    assert!(!row.deleted);
    assert_eq!(row.fields.get("first_name"), &json!("Theirs"));
    let live = [hubsync_store::Filter::new(
        "deleted_at",
        hubsync_store::FilterOp::IsNull,
        serde_json::Value::Null,
    )];
    assert_eq!(
        store
            .count_records(PortalId(OTHER), ObjectType::Contacts, &live)
            .await
            .expect("count"),
        1,
        "nothing planted"
    );
    let _ = mine;
    assert!(
        !serve.log_text().contains(&key),
        "the API key never appears in the log"
    );
    serve.terminate(Duration::from_secs(30)).await;
    emulator.shutdown().await;
}
