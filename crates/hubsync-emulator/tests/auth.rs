//! Authentication: private-app tokens, the OAuth code and refresh grants, expiry and HubSpot's
//! 401 bodies.

#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use hubsync_emulator::{EmulatorConfig, Settings};
use serde_json::Value;

async fn exchange(emu: &hubsync_emulator::EmulatorHandle, form: &[(&str, &str)]) -> (u16, Value) {
    let r = reqwest::Client::new()
        .post(format!("{}/oauth/v1/token", emu.base_url()))
        .form(form)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

async fn code_grant(emu: &hubsync_emulator::EmulatorHandle) -> Value {
    let code = emu.admin().authorization_code(PORTAL, None).unwrap();
    let (status, body) = exchange(
        emu,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", "http://localhost/callback"),
            ("client_id", "client-1"),
            ("client_secret", "client-secret-1"),
        ],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body
}

#[tokio::test]
async fn missing_or_unknown_token_gets_401_invalid_authentication() {
    let emu = start().await;
    let r = reqwest::Client::new()
        .get(format!("{}/crm/v3/objects/contacts", emu.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(r.headers()["x-hubspot-auth-failure"], "401 Unauthorized");
    let b: Value = r.json().await.unwrap();
    assert_eq!(b["status"], "error");
    assert_eq!(b["category"], "INVALID_AUTHENTICATION");
    assert_eq!(
        b["message"],
        "Authentication credentials not found. This API supports OAuth 2.0 authentication and you can find more details at https://developers.hubspot.com/docs/methods/auth/oauth-overview"
    );
    assert!(b["correlationId"].is_string());
    let mut c = Client::new(&emu);
    c.token = "pat-na1-wrong".into();
    assert_eq!(c.get("/crm/v3/objects/contacts").await.status, 401);
    emu.shutdown().await;
}

#[tokio::test]
async fn authorization_code_grant_returns_hubspot_token_fields() {
    let emu = start().await;
    let t = code_grant(&emu).await;
    assert_eq!(t["token_type"], "bearer");
    assert_eq!(t["expires_in"], 1800);
    assert!(t["access_token"].as_str().unwrap().len() <= 512);
    assert!(t["refresh_token"].is_string());
    let mut c = Client::new(&emu);
    c.token = t["access_token"].as_str().unwrap().to_owned();
    assert_eq!(c.get("/crm/v3/objects/contacts").await.status, 200);
    // Codes are single-use.
    emu.shutdown().await;
}

#[tokio::test]
async fn bad_client_secret_and_reused_code_are_rejected() {
    let emu = start().await;
    let code = emu.admin().authorization_code(PORTAL, None).unwrap();
    let (s, b) = exchange(
        &emu,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("client_id", "client-1"),
            ("client_secret", "nope"),
        ],
    )
    .await;
    assert_eq!(s, 400);
    assert_eq!(b["status"], "BAD_CLIENT_SECRET");
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("client_id", "client-1"),
        ("client_secret", "client-secret-1"),
    ];
    assert_eq!(exchange(&emu, &form).await.0, 200);
    let (s, b) = exchange(&emu, &form).await;
    assert_eq!(s, 400);
    assert_eq!(b["error"], "invalid_grant");
    emu.shutdown().await;
}

#[tokio::test]
async fn refresh_grant_issues_a_new_access_token() {
    let emu = start().await;
    let t = code_grant(&emu).await;
    let rt = t["refresh_token"].as_str().unwrap();
    let (s, b) = exchange(
        &emu,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", rt),
            ("client_id", "client-1"),
            ("client_secret", "client-secret-1"),
        ],
    )
    .await;
    assert_eq!(s, 200);
    assert_ne!(b["access_token"], t["access_token"]);
    assert_eq!(
        b["refresh_token"], rt,
        "refresh tokens do not rotate by default"
    );
    let (s, b) = exchange(
        &emu,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", "bogus"),
            ("client_id", "client-1"),
            ("client_secret", "client-secret-1"),
        ],
    )
    .await;
    assert_eq!(s, 400);
    assert_eq!(b["error"], "invalid_grant");
    assert_eq!(
        b["error_description"],
        "refresh token is invalid, expired or revoked"
    );
    assert_eq!(b["status"], "BAD_REFRESH_TOKEN");
    assert_eq!(b["message"], "refresh token is invalid, expired or revoked");
    emu.shutdown().await;
}

#[tokio::test]
async fn rotating_refresh_tokens_invalidate_the_old_one() {
    let emu = start().await;
    emu.admin()
        .update_settings(|s| s.rotate_refresh_tokens = true);
    let t = code_grant(&emu).await;
    let rt = t["refresh_token"].as_str().unwrap();
    let form = [
        ("grant_type", "refresh_token"),
        ("refresh_token", rt),
        ("client_id", "client-1"),
        ("client_secret", "client-secret-1"),
    ];
    let (_, b) = exchange(&emu, &form).await;
    assert_ne!(b["refresh_token"], rt);
    assert_eq!(exchange(&emu, &form).await.0, 400);
    emu.shutdown().await;
}

#[tokio::test]
async fn expired_access_token_gets_401_expired_authentication() {
    let emu = start_with(EmulatorConfig {
        portals: vec![portal()],
        settings: Settings {
            access_token_ttl_secs: 1,
            ..Settings::default()
        },
        ..EmulatorConfig::default()
    })
    .await;
    let t = code_grant(&emu).await;
    assert_eq!(t["expires_in"], 1);
    let mut c = Client::new(&emu);
    c.token = t["access_token"].as_str().unwrap().to_owned();
    assert_eq!(c.get("/crm/v3/objects/contacts").await.status, 200);
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let r = c.get("/crm/v3/objects/contacts").await;
    assert_eq!(r.status, 401);
    assert_eq!(r.body["category"], "EXPIRED_AUTHENTICATION");
    let msg = r.body["message"].as_str().unwrap();
    assert!(
        msg.starts_with("The OAuth token used to make this call expired ")
            && msg.ends_with(" second(s) ago."),
        "{msg}"
    );
    emu.shutdown().await;
}

#[tokio::test]
async fn forcing_expiry_expires_every_access_token_but_not_private_tokens() {
    let emu = start().await;
    let t = code_grant(&emu).await;
    let mut c = Client::new(&emu);
    c.token = t["access_token"].as_str().unwrap().to_owned();
    emu.admin().expire_all_tokens();
    assert_eq!(
        c.get("/crm/v3/objects/contacts").await.body["category"],
        "EXPIRED_AUTHENTICATION"
    );
    assert_eq!(
        Client::new(&emu)
            .get("/crm/v3/objects/contacts")
            .await
            .status,
        200
    );
    // A refresh recovers.
    let (s, b) = exchange(
        &emu,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", t["refresh_token"].as_str().unwrap()),
            ("client_id", "client-1"),
            ("client_secret", "client-secret-1"),
        ],
    )
    .await;
    assert_eq!(s, 200);
    c.token = b["access_token"].as_str().unwrap().to_owned();
    assert_eq!(c.get("/crm/v3/objects/contacts").await.status, 200);
    emu.shutdown().await;
}

#[tokio::test]
async fn authorize_endpoint_redirects_with_a_code_and_state() {
    let emu = start().await;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let r = http.get(format!("{}/oauth/authorize?client_id=client-1&redirect_uri=http://localhost/callback&scope=crm.objects.contacts.read&state=xyz", emu.base_url())).send().await.unwrap();
    assert_eq!(r.status(), 302);
    let loc = r.headers()["location"].to_str().unwrap().to_owned();
    assert!(loc.starts_with("http://localhost/callback?code="), "{loc}");
    assert!(loc.ends_with("&state=xyz"));
    let code = loc
        .split("code=")
        .nth(1)
        .unwrap()
        .split('&')
        .next()
        .unwrap();
    let (s, _) = exchange(
        &emu,
        &[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", "http://localhost/callback"),
            ("client_id", "client-1"),
            ("client_secret", "client-secret-1"),
        ],
    )
    .await;
    assert_eq!(s, 200);
    let over_http: Value = reqwest::Client::new()
        .post(format!(
            "{}/_emulator/portals/{PORTAL}/oauth/code",
            emu.base_url()
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(over_http["code"].is_string());
    emu.shutdown().await;
}
