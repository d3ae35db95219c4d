//! Tenants at runtime: a running `hubsync serve` picks up portals added with `hubsync portal
//! add`, parks a portal whose token HubSpot refuses with a status that says so (instead of
//! retrying it forever), resumes it once it is authorised again, and stops syncing a portal
//! removed with `hubsync portal remove` — all without a restart.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{APP, ServeProcess, ServeSpec, WEBHOOK_SECRET};
use hubsync_core::{AppId, ObjectType, PortalId};
use hubsync_emulator::{Emulator, EmulatorConfig, PortalConfig, SeedSpec};
use hubsync_store::{Portal, PortalAuth, PortalStatus, Store};
use serde_json::json;

const GOOD: u64 = 7_200_001;
const REVOKED: u64 = 7_200_002;
const LATE: u64 = 7_200_003;
const SEEDED: usize = 12;

fn token_of(portal: u64) -> String {
    format!("pat-na1-tenant-{portal}")
}

fn portal_row(id: u64, token: &str) -> Portal {
    Portal {
        portal_id: PortalId(id),
        name: format!("tenant-{id}"),
        app_id: Some(AppId(APP)),
        auth: PortalAuth(json!({"kind": "private_app", "token": token})),
        status: PortalStatus::Active,
        status_reason: None,
        config: json!({"burst_tier": 100}),
        created_at: 0,
    }
}

/// Runs `hubsync portal …` against the database; panics with its output if it fails.
fn portal_cli(database_url: &str, workdir: &std::path::Path, args: &[&str]) {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_hubsync"))
        .arg("portal")
        .args(args)
        .current_dir(workdir)
        .env_remove("HUBSYNC_CONFIG")
        .env("HUBSYNC_DATABASE_URL", database_url)
        .env("HUBSYNC_HUBSPOT__APP_ID", APP.to_string())
        .output()
        .expect("run hubsync portal");
    assert!(
        output.status.success(),
        "hubsync portal {args:?} failed:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

async fn live_contacts(store: &Arc<dyn Store>, portal: u64) -> u64 {
    let filters = [hubsync_store::Filter {
        field: "deleted_at".into(),
        op: hubsync_store::FilterOp::IsNull,
        value: json!(null),
    }];
    store
        .count_records(PortalId(portal), ObjectType::Contacts, &filters)
        .await
        .expect("count")
}

async fn status_of(store: &Arc<dyn Store>, portal: u64) -> (PortalStatus, Option<String>) {
    let row = store
        .get_portal(PortalId(portal))
        .await
        .expect("portal")
        .expect("portal row");
    (row.status, row.status_reason)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn portals_come_and_go_and_a_refused_token_parks_until_authorised_again() {
    let portals = [GOOD, REVOKED, LATE].map(|id| {
        let mut cfg = PortalConfig::new(id, APP);
        cfg.private_app_token = Some(token_of(id));
        cfg.webhook_secret = WEBHOOK_SECRET.to_owned();
        cfg
    });
    let config = EmulatorConfig {
        portals: portals.to_vec(),
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
    let admin = emulator.admin();
    for (i, id) in [GOOD, REVOKED, LATE].into_iter().enumerate() {
        let spec = SeedSpec {
            contacts: SEEDED,
            companies: 2,
            deals: 0,
            duplicate_share: 0.0,
            associate: false,
            seed: Some(i as u64),
        };
        admin.seed(id, &spec).expect("seed");
    }

    let dir = tempfile::tempdir().expect("tempdir");
    let database_url = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("hubsync.db").display()
    );
    let store: Arc<dyn Store> = hubsync_store::connect(&database_url).await.expect("store");
    store
        .upsert_portal(&portal_row(GOOD, &token_of(GOOD)))
        .await
        .expect("portal");
    // This portal's token was revoked in HubSpot: what hubsync holds is refused.
    store
        .upsert_portal(&portal_row(REVOKED, "pat-na1-revoked"))
        .await
        .expect("portal");

    let spec = ServeSpec {
        database_url: database_url.clone(),
        hubspot_url: emulator.base_url(),
        port: common::free_port(),
        webhook_secret: WEBHOOK_SECRET.to_owned(),
        workdir: dir.path().to_owned(),
        env: vec![("HUBSYNC_SCALE__LEASE_SECS".into(), "3".into())],
    };
    for id in [GOOD, REVOKED, LATE] {
        admin
            .set_webhook(id, Some(spec.webhook_target()), None)
            .expect("webhook target");
    }
    let mut serve = ServeProcess::spawn(&spec, 0);
    serve.wait_ready(Duration::from_secs(30)).await;
    let timeout = Duration::from_secs(30);

    // The good portal syncs; the revoked one is parked, saying why, and left alone.
    common::eventually(timeout, async || {
        (live_contacts(&store, GOOD).await == SEEDED as u64).then_some(())
    })
    .await;
    let (status, reason) = common::eventually(timeout, async || {
        let (status, reason) = status_of(&store, REVOKED).await;
        (status != PortalStatus::Active).then_some((status, reason))
    })
    .await;
    assert_eq!(status, PortalStatus::NeedsReauth, "reason: {reason:?}");
    assert!(
        reason.as_deref().is_some_and(|r| !r.is_empty()),
        "a parked portal says why"
    );
    let refused = admin.stats().unauthenticated;
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(
        admin.stats().unauthenticated,
        refused,
        "a parked portal is not retried"
    );
    assert_eq!(live_contacts(&store, REVOKED).await, 0);

    // A portal added while running is picked up.
    portal_cli(
        &database_url,
        dir.path(),
        &["add", &LATE.to_string(), "--token", &token_of(LATE)],
    );
    common::eventually(timeout, async || {
        (live_contacts(&store, LATE).await == SEEDED as u64).then_some(())
    })
    .await;

    // Authorised again, the parked portal resumes.
    portal_cli(
        &database_url,
        dir.path(),
        &["add", &REVOKED.to_string(), "--token", &token_of(REVOKED)],
    );
    common::eventually(timeout, async || {
        (live_contacts(&store, REVOKED).await == SEEDED as u64).then_some(())
    })
    .await;
    assert_eq!(status_of(&store, REVOKED).await.0, PortalStatus::Active);

    // A removed portal's workers stop: HubSpot hears nothing more about it.
    portal_cli(&database_url, dir.path(), &["remove", &GOOD.to_string()]);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let requests = admin.stats().portal(GOOD).requests;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        admin.stats().portal(GOOD).requests,
        requests,
        "a removed portal is not synced any more"
    );
    assert!(
        serve
            .log_text()
            .contains("portal removed or no longer active")
            || serve.log_text().contains("lease lost"),
        "{}",
        serve.log_text()
    );

    let status = serve.terminate(Duration::from_secs(30)).await;
    assert!(
        status.is_some_and(|s| s.success()),
        "graceful shutdown failed ({status:?}):\n{}",
        serve.log_text()
    );
    store.close().await;
}
