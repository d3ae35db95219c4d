//! Auth over real HTTP: OAuth refresh before expiry and on a forced 401, persistence of new
//! tokens, and NeedsReauth (fail fast, no loop) when a refresh or a token is rejected.

use std::time::Duration;

use hubsync_core::ObjectType;
use hubsync_emulator::Settings;
use hubsync_hubspot::model::ListParams;
use hubsync_hubspot::{ApiError, AuthStatus, OAuthTokens, PortalCredentials};
use secrecy::{ExposeSecret, SecretString};
use time::OffsetDateTime;

use crate::common::{PORTAL, Setup, oauth_app, start, start_oauth};

fn list_one() -> ListParams {
    ListParams {
        limit: Some(1),
        ..ListParams::default()
    }
}

#[tokio::test]
async fn oauth_token_is_refreshed_before_it_expires_and_handed_to_the_store() {
    let setup = Setup {
        settings: Settings {
            access_token_ttl_secs: 3,
            ..Settings::default()
        },
        ..Setup::default()
    };
    let (bed, store) = start_oauth(setup).await;
    bed.portal
        .list_page(ObjectType::Contacts, &list_one())
        .await
        .unwrap();
    assert!(store.saved.lock().is_empty());
    // Past the refresh point (half of a 3 s lifetime), before expiry.
    tokio::time::sleep(Duration::from_millis(1_600)).await;
    bed.portal
        .list_page(ObjectType::Contacts, &list_one())
        .await
        .unwrap();

    let saved = store.saved.lock();
    assert_eq!(saved.len(), 1);
    assert_eq!(saved[0].0, PORTAL);
    assert!(saved[0].1.expires_at > OffsetDateTime::now_utc());
    assert_eq!(
        bed.admin().stats().unauthenticated,
        0,
        "refreshed before HubSpot had to say so"
    );
    assert_eq!(bed.portal.stats().token_refreshes, 1);
}

#[tokio::test]
async fn a_forced_401_refreshes_once_and_retries_the_call() {
    let (bed, store) = start_oauth(Setup::default()).await;
    bed.portal
        .list_page(ObjectType::Contacts, &list_one())
        .await
        .unwrap();
    bed.admin().expire_all_tokens();
    bed.portal
        .list_page(ObjectType::Contacts, &list_one())
        .await
        .expect("refreshed and retried");
    assert_eq!(bed.admin().stats().unauthenticated, 1);
    assert_eq!(bed.portal.stats().token_refreshes, 1);
    assert_eq!(store.saved.lock().len(), 1);
    assert_eq!(bed.portal.status().auth, AuthStatus::Ok);
}

#[tokio::test]
async fn a_rejected_refresh_marks_the_portal_needs_reauth_and_stops_calling() {
    let (bed, _store) = start_oauth(Setup::default()).await;
    let mut status = bed.portal.auth_status();
    let good = match bed.hubspot.get(PORTAL) {
        Some(_) => bed.portal.clone(),
        None => unreachable!(),
    };
    // Same access token, but a refresh token HubSpot does not know.
    let current_access = {
        let code = bed
            .admin()
            .authorization_code(PORTAL.get(), Some(crate::common::REDIRECT.into()))
            .unwrap();
        bed.hubspot
            .exchange_code(
                &oauth_app(),
                &SecretString::from(code),
                crate::common::REDIRECT,
            )
            .await
            .unwrap()
    };
    let bogus = OAuthTokens {
        access_token: current_access.tokens.access_token.clone(),
        refresh_token: SecretString::from("rt-revoked"),
        expires_at: current_access.tokens.expires_at,
    };
    bed.hubspot.portal(
        PORTAL,
        PortalCredentials::OAuth {
            app: oauth_app(),
            tokens: bogus,
        },
    );
    bed.admin().expire_all_tokens();
    let token_requests = bed.admin().stats().oauth_token_requests;

    let first = good.list_page(ObjectType::Contacts, &list_one()).await;
    assert!(
        matches!(first, Err(ApiError::NeedsReauth { .. })),
        "{first:?}"
    );
    assert!(good.needs_reauth());
    status.changed().await.unwrap();
    assert!(
        matches!(&*status.borrow(), AuthStatus::NeedsReauth { reason } if reason.contains("BAD_REFRESH_TOKEN"))
    );

    let second = good.list_page(ObjectType::Contacts, &list_one()).await;
    assert!(matches!(second, Err(ApiError::NeedsReauth { .. })));
    let stats = bed.admin().stats();
    assert_eq!(
        stats.oauth_token_requests,
        token_requests + 1,
        "one refresh attempt, no loop"
    );
    assert_eq!(
        stats.unauthenticated, 1,
        "the second call never reached HubSpot"
    );

    // Re-authorisation: new credentials clear the state.
    let code = bed
        .admin()
        .authorization_code(PORTAL.get(), Some(crate::common::REDIRECT.into()))
        .unwrap();
    let grant = bed
        .hubspot
        .exchange_code(
            &oauth_app(),
            &SecretString::from(code),
            crate::common::REDIRECT,
        )
        .await
        .unwrap();
    assert!(!grant.tokens.refresh_token.expose_secret().is_empty());
    bed.hubspot.portal(
        PORTAL,
        PortalCredentials::OAuth {
            app: oauth_app(),
            tokens: grant.tokens,
        },
    );
    good.list_page(ObjectType::Contacts, &list_one())
        .await
        .unwrap();
    assert!(!good.needs_reauth());
}

#[tokio::test]
async fn a_rejected_private_app_token_needs_reauth_without_retrying() {
    let bed = start(Setup::default()).await;
    let wrong = bed.hubspot.portal(
        PORTAL,
        PortalCredentials::PrivateApp(SecretString::from("pat-na1-wrong")),
    );
    let first = wrong.list_page(ObjectType::Contacts, &list_one()).await;
    assert!(
        matches!(first, Err(ApiError::NeedsReauth { ref reason, .. }) if reason.contains("INVALID_AUTHENTICATION")),
        "{first:?}"
    );
    assert!(matches!(
        wrong.list_page(ObjectType::Contacts, &list_one()).await,
        Err(ApiError::NeedsReauth { .. })
    ));
    assert_eq!(bed.admin().stats().unauthenticated, 1);
    assert_eq!(wrong.stats().retries, 0);
}

#[tokio::test]
async fn a_bad_authorization_code_is_an_oauth_error() {
    let (bed, _store) = start_oauth(Setup::default()).await;
    let result = bed
        .hubspot
        .exchange_code(
            &oauth_app(),
            &SecretString::from("code-bogus"),
            crate::common::REDIRECT,
        )
        .await;
    match result {
        Err(ApiError::OAuth { status: 400, error }) => {
            assert_eq!(error.error.as_deref(), Some("invalid_grant"));
        }
        other => panic!("expected an oauth error, got {other:?}"),
    }
}

/// Concurrent calls while HubSpot keeps expiring every access token under them (what the
/// soak's token faults do): a call whose token was replaced by another call's refresh while it
/// was in flight tries the new one. No call may end in NeedsReauth and the portal stays
/// authorised: only a rejected refresh means a human must act.
#[tokio::test]
async fn calls_ride_out_tokens_expired_and_replaced_while_they_are_in_flight() {
    let (bed, _store) = start_oauth(Setup::default()).await;
    let admin = bed.admin();
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let expirer = {
        let done = done.clone();
        tokio::spawn(async move {
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                admin.expire_all_tokens();
                tokio::time::sleep(Duration::from_millis(3)).await;
            }
        })
    };
    let callers: Vec<_> = (0..16)
        .map(|_| {
            let portal = bed.portal.clone();
            tokio::spawn(async move {
                let mut transient = 0;
                for _ in 0..25 {
                    match portal.list_page(ObjectType::Contacts, &list_one()).await {
                        Ok(_) => {}
                        // Tokens expired faster than a call can retry: try again later.
                        Err(ApiError::TokenRejected { .. }) => transient += 1,
                        Err(other) => return Err(other),
                    }
                }
                Ok::<_, ApiError>(transient)
            })
        })
        .collect();
    let mut transient = 0;
    for caller in callers {
        transient += caller
            .await
            .unwrap()
            .expect("no call ends in anything but a retryable error");
    }
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    expirer.await.unwrap();
    assert_eq!(bed.portal.status().auth, AuthStatus::Ok, "still authorised");
    // Every 3 ms is far faster than HubSpot ever expires tokens: many calls give up for now,
    // but the retries carry the others through.
    assert!(transient < 16 * 25, "every call gave up");
    assert!(
        bed.admin().stats().unauthenticated > 0,
        "tokens were expired under the calls"
    );
    bed.portal
        .list_page(ObjectType::Contacts, &list_one())
        .await
        .expect("calls succeed once the expiries stop");
}
