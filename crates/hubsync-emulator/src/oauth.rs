//! OAuth 2: the consent step (auto-approved), `POST /oauth/v1/token` for authorization_code and
//! refresh_token grants, and token metadata.

use axum::http::{Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::api::{Req, json_resp};
use crate::error::{ApiError, EmulatorError, correlation_id};
use crate::model::now_ms;
use crate::state::{CodeInfo, RefreshInfo, Shared, TokenInfo, TokenKind};

fn oauth_error(status: &str, error: &str, message: &str) -> Response {
    json_resp(
        StatusCode::BAD_REQUEST,
        json!({
            "status": status,
            "message": message,
            "correlationId": correlation_id(),
            "error": error,
            "error_description": message,
        }),
    )
}

fn random_token(prefix: &str) -> String {
    format!(
        "{prefix}{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

/// Issues an authorization code for a portal's OAuth client (what the consent screen does).
pub fn issue_code(
    sh: &Shared,
    portal_id: u64,
    redirect_uri: Option<String>,
) -> Result<String, EmulatorError> {
    let portal = sh
        .portal(portal_id)
        .ok_or(EmulatorError::PortalNotFound(portal_id))?;
    let client = portal
        .cfg
        .read()
        .oauth
        .clone()
        .ok_or(EmulatorError::NoOAuthClient(portal_id))?;
    let code = random_token("code-");
    sh.tokens.write().codes.insert(
        code.clone(),
        CodeInfo {
            portal: portal_id,
            client_id: client.client_id,
            redirect_uri,
            issued_at: now_ms(),
        },
    );
    Ok(code)
}

/// Handles `/oauth/...`.
pub fn handle(sh: &Shared, req: &Req) -> Result<Response, ApiError> {
    let s: Vec<&str> = req.segs.iter().map(String::as_str).collect();
    match (&req.method, s.as_slice()) {
        (&Method::POST, ["oauth", "v1", "token"]) => {
            sh.stats.global(|g| g.oauth_token_requests += 1);
            Ok(token(sh, req))
        }
        (&Method::GET, ["oauth", "authorize"]) => authorize(sh, req, None),
        (&Method::GET, ["oauth", portal, "authorize"]) => authorize(sh, req, portal.parse().ok()),
        (&Method::GET, ["oauth", "v1", "access-tokens", t]) => {
            let tokens = sh.tokens.read();
            let Some(info) = tokens.access.get(*t).filter(|i| i.kind == TokenKind::OAuth) else {
                return Ok(oauth_error(
                    "BAD_ACCESS_TOKEN",
                    "invalid_token",
                    "access token is invalid, expired or revoked",
                ));
            };
            let expires_in = info
                .expires_at
                .map_or(0, |e| ((e - now_ms()) / 1000).max(0));
            let scopes = sh
                .portal(info.portal)
                .and_then(|p| p.cfg.read().oauth.clone())
                .map(|o| o.scopes)
                .unwrap_or_default();
            Ok(json_resp(
                StatusCode::OK,
                json!({
                    "token": t, "user": "emulator@example.com", "hub_domain": format!("portal-{}.example.com", info.portal),
                    "scopes": scopes, "hub_id": info.portal, "app_id": info.app, "expires_in": expires_in,
                    "user_id": 1, "token_type": "access",
                }),
            ))
        }
        (&Method::GET, ["oauth", "v1", "refresh-tokens", t]) => {
            let tokens = sh.tokens.read();
            let Some(info) = tokens.refresh.get(*t) else {
                return Ok(oauth_error(
                    "BAD_REFRESH_TOKEN",
                    "invalid_grant",
                    "refresh token is invalid, expired or revoked",
                ));
            };
            Ok(json_resp(
                StatusCode::OK,
                json!({
                    "token": t, "user": "emulator@example.com", "hub_domain": format!("portal-{}.example.com", info.portal),
                    "scopes": [], "hub_id": info.portal, "client_id": info.client_id, "user_id": 1, "token_type": "refresh",
                }),
            ))
        }
        (&Method::DELETE, ["oauth", "v1", "refresh-tokens", t]) => {
            sh.tokens.write().refresh.remove(*t);
            Ok(StatusCode::NO_CONTENT.into_response())
        }
        _ => Err(ApiError::route_not_found(
            req.method.as_str(),
            &format!("/{}", s.join("/")),
        )),
    }
}

fn authorize(sh: &Shared, req: &Req, portal: Option<u64>) -> Result<Response, ApiError> {
    let client_id = req.q("client_id").unwrap_or("");
    let redirect = req.q("redirect_uri").unwrap_or("").to_owned();
    let state = req.q("state").map(str::to_owned);
    let portal_id = portal.or_else(|| {
        let portals = sh.portals.read();
        let mut ids: Vec<u64> = portals
            .values()
            .filter(|p| {
                p.cfg
                    .read()
                    .oauth
                    .as_ref()
                    .is_some_and(|o| o.client_id == client_id)
            })
            .map(|p| p.id)
            .collect();
        ids.sort_unstable();
        ids.first().copied()
    });
    let Some(portal_id) = portal_id else {
        return Err(ApiError::validation(format!(
            "unknown client_id {client_id}"
        )));
    };
    let code = issue_code(sh, portal_id, Some(redirect.clone()))
        .map_err(|e| ApiError::validation(e.to_string()))?;
    let sep = if redirect.contains('?') { '&' } else { '?' };
    let mut location = format!("{redirect}{sep}code={code}");
    if let Some(st) = state {
        let encoded = serde_urlencoded::to_string([("state", st)]).unwrap_or_default();
        location.push('&');
        location.push_str(&encoded);
    }
    Ok((StatusCode::FOUND, [(header::LOCATION, location)]).into_response())
}

fn token(sh: &Shared, req: &Req) -> Response {
    let form: Vec<(String, String)> = serde_urlencoded::from_bytes(&req.body).unwrap_or_default();
    let f = |k: &str| form.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    let client_id = f("client_id").unwrap_or("");
    let client_secret = f("client_secret").unwrap_or("");
    let portal = {
        let portals = sh.portals.read();
        portals
            .values()
            .find(|p| {
                p.cfg
                    .read()
                    .oauth
                    .as_ref()
                    .is_some_and(|o| o.client_id == client_id)
            })
            .cloned()
    };
    let Some(client) = portal.as_ref().and_then(|p| p.cfg.read().oauth.clone()) else {
        return oauth_error(
            "BAD_CLIENT_ID",
            "invalid_client",
            "missing or unknown client id",
        );
    };
    if client.client_secret != client_secret {
        return oauth_error(
            "BAD_CLIENT_SECRET",
            "invalid_client",
            "missing or invalid client secret",
        );
    }
    let now = now_ms();
    let (portal_id, refresh_in) = match f("grant_type") {
        Some("authorization_code") => {
            let code = f("code").unwrap_or("");
            let info = sh.tokens.write().codes.remove(code);
            let Some(info) =
                info.filter(|i| i.client_id == client_id && now - i.issued_at < 600_000)
            else {
                return oauth_error(
                    "BAD_AUTH_CODE",
                    "invalid_grant",
                    "missing or invalid auth code",
                );
            };
            let redirect = f("redirect_uri");
            let expected = client
                .redirect_uri
                .clone()
                .or(info.redirect_uri.clone())
                .filter(|r| !r.is_empty());
            if let (Some(exp), Some(got)) = (expected, redirect)
                && exp != got
            {
                return oauth_error(
                    "BAD_REDIRECT_URI",
                    "invalid_grant",
                    "redirect_uri does not match the one used for the authorization code",
                );
            }
            (info.portal, None)
        }
        Some("refresh_token") => {
            let rt = f("refresh_token").unwrap_or("").to_owned();
            let info = sh.tokens.read().refresh.get(&rt).cloned();
            let Some(info) = info.filter(|i| i.client_id == client_id) else {
                return oauth_error(
                    "BAD_REFRESH_TOKEN",
                    "invalid_grant",
                    "refresh token is invalid, expired or revoked",
                );
            };
            (info.portal, Some(rt))
        }
        _ => {
            return oauth_error(
                "BAD_GRANT_TYPE",
                "unsupported_grant_type",
                "grant_type must be authorization_code or refresh_token",
            );
        }
    };
    let Some(portal) = sh.portal(portal_id) else {
        return oauth_error(
            "BAD_REFRESH_TOKEN",
            "invalid_grant",
            "refresh token is invalid, expired or revoked",
        );
    };
    let (ttl, rotate) = {
        let s = sh.settings.read();
        (s.access_token_ttl_secs, s.rotate_refresh_tokens)
    };
    let access = random_token("CL");
    let mut tokens = sh.tokens.write();
    let refresh = match refresh_in {
        Some(rt) if !rotate => rt,
        other => {
            if let Some(old) = other {
                tokens.refresh.remove(&old);
            }
            let rt = random_token("rt-");
            tokens.refresh.insert(
                rt.clone(),
                RefreshInfo {
                    portal: portal_id,
                    client_id: client_id.to_owned(),
                },
            );
            rt
        }
    };
    tokens.access.insert(
        access.clone(),
        TokenInfo {
            portal: portal_id,
            app: portal.app_id(),
            kind: TokenKind::OAuth,
            expires_at: Some(now + i64::try_from(ttl.saturating_mul(1000)).unwrap_or(i64::MAX / 2)),
        },
    );
    let body: Value = json!({
        "token_type": "bearer",
        "refresh_token": refresh,
        "access_token": access,
        "expires_in": ttl,
        "hub_id": portal_id,
        "scopes": client.scopes,
    });
    json_resp(StatusCode::OK, body)
}
