//! Rate limits exercised with real bursts over HTTP (small tiers and short windows keep it fast).

#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use hubsync_emulator::{BurstScope, EmulatorConfig, Faults, Settings, Tier};
use serde_json::json;

async fn small(burst: u32, daily: u64, settings: Settings) -> hubsync_emulator::EmulatorHandle {
    let mut p = portal();
    p.tier = Tier::Custom { burst, daily };
    start_with(EmulatorConfig {
        portals: vec![p],
        settings,
        ..EmulatorConfig::default()
    })
    .await
}

#[tokio::test]
async fn burst_over_the_window_gets_429_ten_secondly_rolling() {
    let emu = small(
        5,
        1000,
        Settings {
            burst_window_ms: 1500,
            ..Settings::default()
        },
    )
    .await;
    let c = Client::new(&emu);
    let mut remaining = Vec::new();
    for _ in 0..5 {
        let r = c.get("/crm/v3/objects/contacts").await;
        assert_eq!(r.status, 200);
        assert_eq!(r.header("x-hubspot-ratelimit-max").as_deref(), Some("5"));
        assert_eq!(
            r.header("x-hubspot-ratelimit-interval-milliseconds")
                .as_deref(),
            Some("1500")
        );
        assert_eq!(
            r.header("x-hubspot-ratelimit-daily").as_deref(),
            Some("1000")
        );
        assert!(r.header("x-hubspot-ratelimit-secondly").is_some());
        remaining.push(r.header("x-hubspot-ratelimit-remaining").unwrap());
    }
    assert_eq!(remaining, ["4", "3", "2", "1", "0"]);
    let r = c.get("/crm/v3/objects/contacts").await;
    assert_eq!(r.status, 429);
    let b = &r.body;
    assert_eq!(b["status"], "error");
    assert_eq!(
        b["message"],
        "You have reached your ten_secondly_rolling limit."
    );
    assert_eq!(b["errorType"], "RATE_LIMIT");
    assert_eq!(b["policyName"], "TEN_SECONDLY_ROLLING");
    assert!(b["correlationId"].as_str().unwrap().len() == 36);
    assert!(b["groupName"].is_string());
    assert!(
        b.get("category").is_none(),
        "429 bodies use errorType, not category"
    );
    assert!(r.header("retry-after").is_none());
    tokio::time::sleep(std::time::Duration::from_millis(1600)).await;
    assert_eq!(
        c.get("/crm/v3/objects/contacts").await.status,
        200,
        "the rolling window frees up"
    );
    assert_eq!(
        emu.admin().stats().portal(PORTAL).rate_limited["TEN_SECONDLY_ROLLING"],
        1
    );
    emu.shutdown().await;
}

#[tokio::test]
async fn retry_after_is_sent_when_enabled() {
    let emu = small(
        1,
        1000,
        Settings {
            retry_after_header: true,
            ..Settings::default()
        },
    )
    .await;
    let c = Client::new(&emu);
    c.get("/crm/v3/objects/contacts").await;
    let r = c.get("/crm/v3/objects/contacts").await;
    assert_eq!(r.status, 429);
    let secs: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=10).contains(&secs));
    emu.shutdown().await;
}

#[tokio::test]
async fn daily_budget_gets_429_daily() {
    let emu = small(100, 3, Settings::default()).await;
    let c = Client::new(&emu);
    for left in ["2", "1", "0"] {
        let r = c.get("/crm/v3/objects/contacts").await;
        assert_eq!(
            r.header("x-hubspot-ratelimit-daily-remaining").as_deref(),
            Some(left)
        );
    }
    let r = c.get("/crm/v3/objects/contacts").await;
    assert_eq!(r.status, 429);
    assert_eq!(r.body["policyName"], "DAILY");
    assert_eq!(r.body["message"], "You have reached your daily limit.");
    assert!(r.body["requestId"].is_string());
    emu.shutdown().await;
}

#[tokio::test]
async fn search_has_its_own_per_second_bucket_outside_the_burst() {
    let emu = small(
        2,
        1000,
        Settings {
            search_per_second: 3,
            search_window_ms: 10_000,
            ..Settings::default()
        },
    )
    .await;
    let c = Client::new(&emu);
    for _ in 0..3 {
        assert_eq!(
            c.post("/crm/v3/objects/contacts/search", json!({}))
                .await
                .status,
            200
        );
    }
    let r = c.post("/crm/v3/objects/contacts/search", json!({})).await;
    assert_eq!(r.status, 429);
    assert_eq!(r.body["message"], "You have reached your secondly limit.");
    assert_eq!(r.body["errorType"], "RATE_LIMIT");
    assert_eq!(r.body["policyName"], "SECONDLY");
    assert!(r.header("x-hubspot-ratelimit-max").is_none());
    // Search did not spend the burst budget.
    assert_eq!(
        c.get("/crm/v3/objects/contacts")
            .await
            .header("x-hubspot-ratelimit-remaining")
            .as_deref(),
        Some("1")
    );
    let s = emu.admin().stats().portal(PORTAL);
    assert_eq!(s.requests_by_lane["search"], 4);
    assert_eq!(s.requests_by_lane["general"], 1);
    assert_eq!(s.requests_by_operation["contacts.search"], 4);
    emu.shutdown().await;
}

#[tokio::test]
async fn a_competing_app_spends_a_share_of_the_portal_budget() {
    let emu = small(10, 1000, Settings::default()).await;
    emu.admin().set_faults(Faults {
        competing_app_share_pct: 60.0,
        ..Faults::default()
    });
    let c = Client::new(&emu);
    let r = c.get("/crm/v3/objects/contacts").await;
    assert_eq!(
        r.header("x-hubspot-ratelimit-remaining").as_deref(),
        Some("3")
    );
    let mut ok = 1;
    while c.get("/crm/v3/objects/contacts").await.status == 200 {
        ok += 1;
    }
    assert_eq!(ok, 4);
    // With per-app budgets the competing app no longer matters.
    emu.admin()
        .update_settings(|s| s.burst_scope = BurstScope::App);
    emu.admin().reset_rate_limits(PORTAL).unwrap();
    assert_eq!(
        c.get("/crm/v3/objects/contacts")
            .await
            .header("x-hubspot-ratelimit-remaining")
            .as_deref(),
        Some("9")
    );
    emu.shutdown().await;
}

#[tokio::test]
async fn oauth_calls_carry_no_daily_headers() {
    let emu = small(10, 1000, Settings::default()).await;
    let code = emu.admin().authorization_code(PORTAL, None).unwrap();
    let http = reqwest::Client::new();
    let tok: serde_json::Value = http
        .post(format!("{}/oauth/v1/token", emu.base_url()))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("client_id", "client-1"),
            ("client_secret", "client-secret-1"),
            ("redirect_uri", "http://localhost/callback"),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut c = Client::new(&emu);
    c.token = tok["access_token"].as_str().unwrap().to_owned();
    let r = c.get("/crm/v3/objects/contacts").await;
    assert_eq!(r.status, 200);
    assert!(r.header("x-hubspot-ratelimit-max").is_some());
    assert!(r.header("x-hubspot-ratelimit-daily").is_none());
    assert!(r.header("x-hubspot-ratelimit-daily-remaining").is_none());
    emu.shutdown().await;
}
