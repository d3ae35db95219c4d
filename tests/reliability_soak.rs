//! Fault soak: the real `hubsync serve` process syncs an OAuth portal while both sides edit and
//! the emulator misbehaves the whole time — 10 % of webhook events dropped, 5 % duplicated, 10 %
//! reordered, 10 % delayed, 2 % of API calls answered 5xx, access tokens expiring every minute
//! (and all of them revoked at intervals), and a competing app holding half the burst budget.
//! After the load stops and one `hubsync reconcile --full`, both sides are identical, no edit is
//! lost (per-field markers), HubSpot holds no duplicate, and nothing loops: a further idle
//! period costs only the scheduled reconcile searches.
//!
//! Short form (CI): 30 s of load, 1,000 seeded contacts, 12 s idle. Long form
//! (`HUBSYNC_RELIABILITY_LONG=1`): 5 minutes of load, 5,000 contacts, 60 s idle.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::twoway::{Editors, remote_contacts, wait_quiet};
use common::{APP, PORTAL, ServeProcess, ServeSpec, WEBHOOK_SECRET};
use hubsync_core::{AppId, PortalId};
use hubsync_emulator::{
    Emulator, EmulatorConfig, Faults, OAuthClient, PortalConfig, SeedSpec, Tier,
};
use hubsync_engine::{Engine, EngineSettings, converge, setup};
use hubsync_hubspot::{ClientConfig, HubspotClient, OAuthApp};
use hubsync_mapping::Mappings;
use hubsync_store::{Portal, PortalAuth, PortalStatus, Store};
use serde_json::{Value, json};

const CLIENT_ID: &str = "soak-client";
const CLIENT_SECRET: &str = "soak-client-secret";

fn soak_faults() -> Faults {
    Faults {
        webhook_drop_pct: 10.0,
        webhook_duplicate_pct: 5.0,
        webhook_reorder_pct: 10.0,
        webhook_delay_pct: 10.0,
        webhook_delay_ms: 1500,
        api_5xx_pct: 2.0,
        competing_app_share_pct: 50.0,
        ..Faults::default()
    }
}

/// Installs the app on the portal: the OAuth code grant, as `portal auth` would.
async fn install(base_url: &str, admin: &hubsync_emulator::Admin) -> Value {
    let code = admin.authorization_code(PORTAL, None).expect("code");
    let response = reqwest::Client::new()
        .post(format!("{base_url}/oauth/v1/token"))
        .form(&[
            ("grant_type", "authorization_code"),
            ("client_id", CLIENT_ID),
            ("client_secret", CLIENT_SECRET),
            ("code", code.as_str()),
            ("redirect_uri", "http://localhost/callback"),
        ])
        .send()
        .await
        .expect("token request");
    assert!(
        response.status().is_success(),
        "token exchange: {}",
        response.status()
    );
    let tokens: Value = response.json().await.expect("tokens");
    let expires_at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64
        + tokens["expires_in"].as_i64().unwrap_or(60);
    json!({"kind": "oauth", "access_token": tokens["access_token"], "refresh_token": tokens["refresh_token"], "expires_at": expires_at})
}

fn oauth_app() -> OAuthApp {
    OAuthApp {
        client_id: CLIENT_ID.to_owned(),
        client_secret: secrecy::SecretString::from(CLIENT_SECRET),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_webhook_api_token_and_budget_faults_nothing_is_lost_duplicated_or_looping() {
    let long = common::reliability_long();
    let seed = std::env::var("HUBSYNC_RELIABILITY_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0x50A6u64);
    let load = Duration::from_secs(if long { 300 } else { 30 });
    let idle = Duration::from_secs(if long { 60 } else { 12 });
    let seeded = if long { 5000 } else { 1000 };
    let started = Instant::now();

    let mut portal_cfg = PortalConfig::new(PORTAL, APP);
    portal_cfg.webhook_secret = WEBHOOK_SECRET.to_owned();
    portal_cfg.tier = Tier::PublicApp;
    portal_cfg.oauth = Some(OAuthClient {
        client_id: CLIENT_ID.into(),
        client_secret: CLIENT_SECRET.into(),
        redirect_uri: None,
        scopes: vec![],
    });
    let emulator = Emulator::start(
        EmulatorConfig {
            portals: vec![portal_cfg],
            seed,
            ..EmulatorConfig::default()
        },
        tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind"),
    )
    .await
    .expect("emulator");
    let admin = emulator.admin();
    admin.update_settings(|s| {
        s.webhook_time_scale = 0.01;
        s.access_token_ttl_secs = 60;
    });
    admin
        .seed(
            PORTAL,
            &SeedSpec {
                contacts: seeded,
                companies: seeded / 10,
                deals: 0,
                duplicate_share: 0.0,
                associate: false,
                seed: Some(seed),
            },
        )
        .expect("seed");
    let remote = remote_contacts(&admin)
        .into_iter()
        .map(|(email, id, _)| (email, id))
        .collect();

    let mut dir = tempfile::tempdir().expect("tempdir");
    if std::env::var("HUBSYNC_RELIABILITY_KEEP").is_ok() {
        dir.disable_cleanup(true);
        eprintln!(
            "soak: keeping the database and the serve logs in {}",
            dir.path().display()
        );
    }
    let database_url = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("hubsync.db").display()
    );
    let store: Arc<dyn Store> = hubsync_store::connect(&database_url).await.expect("store");
    let auth = install(&emulator.base_url(), &admin).await;
    let portal = Portal {
        portal_id: PortalId(PORTAL),
        name: "soak".into(),
        app_id: Some(AppId(APP)),
        auth: PortalAuth(auth),
        status: PortalStatus::Active,
        status_reason: None,
        config: json!({"burst_tier": 110}),
        created_at: 0,
    };
    store.upsert_portal(&portal).await.expect("portal");
    let spec = ServeSpec {
        database_url: database_url.clone(),
        hubspot_url: emulator.base_url(),
        port: common::free_port(),
        webhook_secret: WEBHOOK_SECRET.to_owned(),
        workdir: dir.path().to_owned(),
        env: vec![
            ("HUBSYNC_HUBSPOT__CLIENT_ID".into(), CLIENT_ID.into()),
            (
                "HUBSYNC_HUBSPOT__CLIENT_SECRET".into(),
                CLIENT_SECRET.into(),
            ),
            ("HUBSYNC_HUBSPOT__BURST_TIER".into(), "110".into()),
            // The default reconcile interval (300 s): the full pass after the load has the drift to repair.
            ("HUBSYNC_RECONCILE__INTERVAL_SECS".into(), "300".into()),
        ],
    };
    admin
        .set_webhook(PORTAL, Some(spec.webhook_target()), None)
        .expect("target");
    admin.set_faults(soak_faults());

    let mut editors = Editors::new(seed, admin.clone(), Arc::clone(&store), remote);
    editors.app_creates(seeded / 10).await;
    let mut serve = ServeProcess::spawn(&spec, 0);
    serve.wait_ready(Duration::from_secs(30)).await;

    // The load, with every access token revoked at intervals on top of the 60 s lifetime.
    let load_end = Instant::now() + load;
    let mut revocations = 0;
    while Instant::now() < load_end {
        let slice = Instant::now() + Duration::from_secs(15).min(load_end - Instant::now());
        editors.run_until(slice, 25).await;
        admin.expire_all_tokens();
        revocations += 1;
        if let Some(status) = serve.child.try_wait().expect("try_wait") {
            panic!(
                "hubsync serve exited during the soak ({status}):\n{}",
                serve.log_text()
            );
        }
    }
    let faults_during_load = admin.stats().portal(PORTAL);

    // The load stops; hubsync drains what arrived, then one full reconcile pass repairs what the
    // dropped webhooks never said.
    wait_quiet(
        &admin,
        &store,
        &mut serve,
        Duration::from_secs(if long { 600 } else { 240 }),
    )
    .await;
    admin.flush_search(PORTAL).expect("flush search");
    let reconcile = std::process::Command::new(env!("CARGO_BIN_EXE_hubsync"))
        .args(["reconcile", "--full", "--portal", &PORTAL.to_string()])
        .current_dir(dir.path())
        .env_remove("HUBSYNC_CONFIG")
        .env("HUBSYNC_DATABASE_URL", &database_url)
        .env("HUBSYNC_HUBSPOT__BASE_URL", emulator.base_url())
        .env("HUBSYNC_HUBSPOT__APP_ID", APP.to_string())
        .env("HUBSYNC_HUBSPOT__CLIENT_ID", CLIENT_ID)
        .env("HUBSYNC_HUBSPOT__CLIENT_SECRET", CLIENT_SECRET)
        .env("RUST_LOG", "warn")
        .output()
        .expect("hubsync reconcile");
    let reconcile_out = String::from_utf8_lossy(&reconcile.stdout).into_owned();
    assert!(
        reconcile.status.success(),
        "hubsync reconcile --full failed:\n{reconcile_out}{}",
        String::from_utf8_lossy(&reconcile.stderr)
    );
    wait_quiet(&admin, &store, &mut serve, Duration::from_secs(120)).await;

    // The observer does not share the faults: checks and the idle measurement run clean.
    admin.set_faults(Faults::default());
    let refreshed = store
        .get_portal(PortalId(PORTAL))
        .await
        .expect("portal")
        .expect("exists");
    assert_eq!(
        refreshed.status,
        PortalStatus::Active,
        "the portal was parked: {:?}",
        refreshed.status_reason
    );

    // No loop: idle, hubsync spends only the scheduled reconcile searches.
    admin.reset_stats();
    tokio::time::sleep(idle).await;
    let idle_stats = admin.stats().portal(PORTAL);
    let non_search: BTreeMap<&String, &u64> = idle_stats
        .requests_by_operation
        .iter()
        .filter(|(op, _)| !op.contains("search"))
        .collect();
    let depths = store.queue_depths(PortalId(PORTAL)).await.expect("depths");

    let status = serve.terminate(Duration::from_secs(40)).await;
    assert!(
        status.is_some_and(|s| s.success()),
        "graceful shutdown failed ({status:?}):\n{}",
        serve.log_text()
    );
    let client =
        HubspotClient::new(ClientConfig::with_base_url(emulator.base_url())).expect("client");
    let engine = Engine {
        store: Arc::clone(&store),
        mappings: Arc::new(Mappings::embedded().expect("mappings")),
        hubspot: client,
        settings: Arc::new(EngineSettings {
            app_id: Some(AppId(APP)),
            ..EngineSettings::default()
        }),
    };
    let current = store
        .get_portal(PortalId(PORTAL))
        .await
        .expect("portal")
        .expect("exists");
    setup::connect_portal(&engine, &current, Some(&oauth_app()))
        .await
        .expect("connect");
    let convergence = converge::check(&engine, PortalId(PORTAL))
        .await
        .expect("convergence check");
    let lost = editors.lost_edits().await;
    let f = &editors.figures;
    let dropped = faults_during_load.webhook_events_dropped;
    let duplicated = faults_during_load.webhook_events_duplicated;
    eprintln!(
        "soak: seed {seed:#x}, {:.0} s load, {} seeded, edits {} remote / {} local, creates {} local / {} remote, {revocations} token revocations, webhook events dropped {dropped} / duplicated {duplicated}, 5xx injected {}, 429s {:?}, idle {:.0} s: {} calls ({:?}), dead letters {}, {:.1} s total\nreconcile --full:\n{reconcile_out}",
        load.as_secs_f64(),
        seeded,
        f.remote_edits,
        f.local_edits,
        f.local_creates,
        f.remote_creates,
        faults_during_load.injected_5xx,
        faults_during_load.rate_limited,
        idle.as_secs_f64(),
        idle_stats.requests,
        idle_stats.requests_by_operation,
        depths.dead_letters,
        started.elapsed().as_secs_f64()
    );
    if !convergence.is_identical() {
        // Evidence for the report: what hubsync believed about each differing record.
        let mut evidence = String::new();
        for t in convergence.types.values() {
            for d in t.differences.iter().take(5) {
                let sync = store
                    .get_sync_state(
                        PortalId(PORTAL),
                        hubsync_core::ObjectType::Contacts,
                        d.local_id,
                    )
                    .await
                    .ok()
                    .flatten();
                let row = store
                    .get_record(
                        PortalId(PORTAL),
                        hubsync_core::ObjectType::Contacts,
                        d.local_id,
                    )
                    .await
                    .ok()
                    .flatten();
                let remote = admin
                    .get(
                        PORTAL,
                        hubsync_emulator::ObjectKind::Contact,
                        d.hubspot_id.0,
                    )
                    .ok()
                    .flatten();
                evidence.push_str(&format!(
                    "local {} / hubspot {}:\n  sync base {:?}\n  base_ts {:?} remote_updated_at {:?} synced_at {:?}\n  local updated_at {:?}\n  hubspot updatedAt {} lastname {}\n",
                    d.local_id.0,
                    d.hubspot_id,
                    sync.as_ref().and_then(|s| s.base.as_ref().map(|b| b.get("last_name").clone())),
                    sync.as_ref().map(|s| s.base_ts.get("last_name").copied()),
                    sync.as_ref().and_then(|s| s.remote_updated_at),
                    sync.as_ref().and_then(|s| s.synced_at),
                    row.map(|r| r.updated_at),
                    remote.as_ref().map(|r| r["updatedAt"].clone()).unwrap_or_default(),
                    remote.as_ref().map(|r| r["properties"]["lastname"].clone()).unwrap_or_default(),
                ));
            }
        }
        let counters = store.counters(PortalId(PORTAL)).await.unwrap_or_default();
        panic!(
            "the two sides differ after the soak:\n{}{evidence}counters {counters:?}",
            common::describe_convergence(&convergence)
        );
    }
    assert!(
        lost.is_empty(),
        "{} edits lost or duplicated, e.g.:\n{}",
        lost.len(),
        lost.iter().take(20).cloned().collect::<Vec<_>>().join("\n")
    );
    assert_eq!(depths.dead_letters, 0, "nothing may be dead-lettered");
    assert!(
        non_search.is_empty(),
        "idle hubsync made calls other than reconcile searches (a loop?): {non_search:?}"
    );
    assert_eq!(
        idle_stats.webhook_events_queued, 0,
        "idle hubsync wrote to HubSpot (an echo loop?)"
    );
    assert!(dropped > 0 && duplicated > 0, "the faults were injected");
    emulator.shutdown().await;
}
