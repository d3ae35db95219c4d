//! Security: the real `hubsync serve` process refuses every webhook delivery HubSpot did not
//! sign just now — forged, tampered, signed for another URL, unsigned, legacy-signed while legacy
//! is off, stale, from the future, and a genuine delivery replayed after the 5-minute window —
//! with 401, and nothing from a refused delivery reaches the app's tables.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{APP, PORTAL, ServeProcess, ServeSpec, TOKEN, WEBHOOK_SECRET};
use hubsync_core::{HubspotId, ObjectType, PortalId};
use hubsync_emulator::{
    DEFAULT_USER_ID, Emulator, EmulatorConfig, ObjectKind, PortalConfig, Tier, sign_v1, sign_v3,
};
use hubsync_store::Store;
use serde_json::json;

fn now_ms() -> i64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock");
    i64::try_from(now.as_millis()).expect("ms")
}

/// A `contact.creation` delivery for one HubSpot contact, as HubSpot sends it.
fn creation(event_id: u64, object_id: u64) -> Vec<u8> {
    serde_json::to_vec(&json!([{
        "eventId": event_id,
        "subscriptionId": 1,
        "portalId": PORTAL,
        "appId": APP,
        "occurredAt": now_ms(),
        "subscriptionType": "contact.creation",
        "attemptNumber": 0,
        "objectId": object_id,
        "changeFlag": "CREATED",
        "changeSource": "CRM_UI",
        "sourceId": "userId:7654321"
    }]))
    .expect("json")
}

struct Bed {
    emulator: hubsync_emulator::EmulatorHandle,
    serve: ServeProcess,
    spec: ServeSpec,
    store: Arc<dyn Store>,
    http: reqwest::Client,
    _dir: tempfile::TempDir,
}

impl Bed {
    async fn start() -> Bed {
        let mut portal = PortalConfig::new(PORTAL, APP);
        portal.private_app_token = Some(TOKEN.to_owned());
        portal.webhook_secret = WEBHOOK_SECRET.to_owned();
        portal.tier = Tier::LimitIncrease;
        let emulator = Emulator::start(
            EmulatorConfig {
                portals: vec![portal],
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
        let spec = ServeSpec {
            database_url,
            hubspot_url: emulator.base_url(),
            port: common::free_port(),
            webhook_secret: WEBHOOK_SECRET.to_owned(),
            workdir: dir.path().to_owned(),
            env: vec![("HUBSYNC_HUBSPOT__BURST_TIER".into(), "250".into())],
        };
        let mut serve = ServeProcess::spawn(&spec, 0);
        serve.wait_ready(Duration::from_secs(30)).await;
        // The initial import of the (empty) portal must be over: a contact created later may
        // reach the app through a webhook only, not through the import's search walk.
        common::eventually(Duration::from_secs(30), async || {
            for ty in ["contacts", "companies", "deals"] {
                let cursor = store
                    .get_cursor(PortalId(PORTAL), &format!("import:{ty}"))
                    .await
                    .expect("cursor");
                if cursor.as_deref() != Some("done") {
                    return None;
                }
            }
            Some(())
        })
        .await;
        Bed {
            emulator,
            serve,
            spec,
            store,
            http: reqwest::Client::new(),
            _dir: dir,
        }
    }

    /// A contact that exists in HubSpot but whose webhooks went nowhere (no target is set).
    fn hubspot_contact(&self, name: &str) -> u64 {
        self.emulator
            .admin()
            .create(
                PORTAL,
                ObjectKind::Contact,
                [
                    ("email", format!("{name}@sec.example")),
                    ("firstname", name.to_owned()),
                ],
                DEFAULT_USER_ID,
            )
            .expect("create")
    }

    /// Posts `body` to the real server with the given headers; returns the status.
    async fn post(&self, body: &[u8], headers: &[(&str, String)]) -> u16 {
        let mut request = self
            .http
            .post(self.spec.webhook_target())
            .header("content-type", "application/json")
            .body(body.to_vec());
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        request.send().await.expect("request").status().as_u16()
    }

    fn v3(
        &self,
        secret: &str,
        url: &str,
        body: &[u8],
        timestamp: i64,
    ) -> Vec<(&'static str, String)> {
        vec![
            (
                "x-hubspot-signature-v3",
                sign_v3(secret, "POST", url, body, timestamp),
            ),
            ("x-hubspot-request-timestamp", timestamp.to_string()),
        ]
    }

    async fn local(&self, hubspot_id: u64) -> bool {
        self.store
            .find_by_hubspot_id(
                PortalId(PORTAL),
                ObjectType::Contacts,
                HubspotId(hubspot_id),
            )
            .await
            .expect("read")
            .is_some()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_replayed_stale_and_unsigned_webhooks_get_401_and_change_nothing() {
    let mut bed = Bed::start().await;
    let url = bed.spec.webhook_target();
    let mut refused_ids = Vec::new();

    // Control: a genuine delivery is accepted and its contact reaches the app.
    let genuine = bed.hubspot_contact("genuine");
    let body = creation(1, genuine);
    assert_eq!(
        bed.post(&body, &bed.v3(WEBHOOK_SECRET, &url, &body, now_ms()))
            .await,
        200
    );

    // Forged: signed with another secret.
    let id = bed.hubspot_contact("forged");
    refused_ids.push(id);
    let body = creation(2, id);
    assert_eq!(
        bed.post(&body, &bed.v3("not-the-secret", &url, &body, now_ms()))
            .await,
        401,
        "forged"
    );

    // Tampered: a genuine signature over another body.
    let id = bed.hubspot_contact("tampered");
    refused_ids.push(id);
    let signed_for = creation(3, genuine);
    let body = creation(3, id);
    assert_eq!(
        bed.post(&body, &bed.v3(WEBHOOK_SECRET, &url, &signed_for, now_ms()))
            .await,
        401,
        "tampered"
    );

    // Signed for another receiver's URL.
    let id = bed.hubspot_contact("elsewhere");
    refused_ids.push(id);
    let body = creation(4, id);
    let elsewhere = "https://attacker.example/webhooks/hubspot";
    assert_eq!(
        bed.post(&body, &bed.v3(WEBHOOK_SECRET, elsewhere, &body, now_ms()))
            .await,
        401,
        "other URL"
    );

    // Unsigned, and signed only with the legacy v1 scheme (not accepted by default).
    let id = bed.hubspot_contact("unsigned");
    refused_ids.push(id);
    let body = creation(5, id);
    assert_eq!(bed.post(&body, &[]).await, 401, "unsigned");
    assert_eq!(
        bed.post(
            &body,
            &[
                ("x-hubspot-signature", sign_v1(WEBHOOK_SECRET, &body)),
                ("x-hubspot-signature-version", "v1".into())
            ]
        )
        .await,
        401,
        "legacy v1"
    );
    // A v3 signature without its timestamp.
    let ts = now_ms();
    assert_eq!(
        bed.post(
            &body,
            &[(
                "x-hubspot-signature-v3",
                sign_v3(WEBHOOK_SECRET, "POST", &url, &body, ts)
            )]
        )
        .await,
        401,
        "no timestamp"
    );

    // Stale: correctly signed, but 6 minutes old; and from 6 minutes in the future.
    let id = bed.hubspot_contact("stale");
    refused_ids.push(id);
    let body = creation(6, id);
    assert_eq!(
        bed.post(
            &body,
            &bed.v3(WEBHOOK_SECRET, &url, &body, now_ms() - 360_000)
        )
        .await,
        401,
        "stale"
    );
    assert_eq!(
        bed.post(
            &body,
            &bed.v3(WEBHOOK_SECRET, &url, &body, now_ms() + 360_000)
        )
        .await,
        401,
        "future"
    );

    // Replayed: a genuine delivery signed 4 min 57 s ago is accepted inside the window; the very
    // same bytes and headers sent again once the window has passed are refused.
    let replayed = bed.hubspot_contact("replayed");
    let body = creation(7, replayed);
    let headers = bed.v3(WEBHOOK_SECRET, &url, &body, now_ms() - 297_000);
    assert_eq!(bed.post(&body, &headers).await, 200, "inside the window");
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(
        bed.post(&body, &headers).await,
        401,
        "replayed after the window"
    );

    // The accepted deliveries reached the app; nothing refused did.
    common::eventually(Duration::from_secs(20), async || {
        (bed.local(genuine).await && bed.local(replayed).await).then_some(())
    })
    .await;
    common::eventually(Duration::from_secs(10), async || {
        (bed.store
            .queue_depths(PortalId(PORTAL))
            .await
            .expect("depths")
            .inbox
            == 0)
            .then_some(())
    })
    .await;
    for id in refused_ids {
        assert!(
            !bed.local(id).await,
            "contact {id} from a refused delivery reached the app"
        );
    }
    let log = bed.serve.log_text();
    assert!(
        log.contains("not signed by HubSpot"),
        "refusals are logged:\n{log}"
    );
    assert!(
        !log.contains(WEBHOOK_SECRET),
        "the webhook secret leaked into the log"
    );
    let status = bed.serve.terminate(Duration::from_secs(30)).await;
    assert!(status.is_some_and(|s| s.success()), "{status:?}");
}
