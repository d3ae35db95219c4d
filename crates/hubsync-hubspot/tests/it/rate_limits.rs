//! Rate limits over real HTTP: header-driven slow-down with a competing app, each 429 policy,
//! Retry-After, pass-through for interactive calls, and the separate search lane.

use std::time::Duration;

use hubsync_core::ObjectType;
use hubsync_emulator::{Faults, Settings, Tier};
use hubsync_hubspot::model::{ListParams, SearchRequest};
use hubsync_hubspot::{ApiError, HubspotClient, PortalClient, PortalCredentials, RateLimitPolicy};
use secrecy::SecretString;
use tokio::task::JoinSet;

use crate::common::{PORTAL, Setup, TOKEN, start};

fn list_one() -> ListParams {
    ListParams {
        limit: Some(1),
        ..ListParams::default()
    }
}

/// Runs `calls` list calls spread over `workers` concurrent tasks; returns every outcome.
async fn list_calls(
    portal: &PortalClient,
    workers: usize,
    calls: usize,
) -> Vec<Result<(), ApiError>> {
    let mut set = JoinSet::new();
    for w in 0..workers {
        let portal = portal.clone();
        let mine = calls / workers + usize::from(w < calls % workers);
        set.spawn(async move {
            let mut out = Vec::new();
            for _ in 0..mine {
                out.push(
                    portal
                        .list_page(ObjectType::Contacts, &list_one())
                        .await
                        .map(drop),
                );
            }
            out
        });
    }
    let mut all = Vec::new();
    while let Some(done) = set.join_next().await {
        all.extend(done.unwrap());
    }
    all
}

fn emulator_429s(bed: &crate::common::Bed, policy: &str) -> u64 {
    bed.emulator_stats()
        .rate_limited
        .get(policy)
        .copied()
        .unwrap_or(0)
}

#[tokio::test]
async fn a_competing_app_spending_half_the_budget_slows_us_down_before_any_429() {
    let mut setup = Setup {
        tier: Tier::Custom {
            burst: 40,
            daily: 1_000_000,
        },
        faults: Faults {
            competing_app_share_pct: 50.0,
            ..Faults::default()
        },
        ..Setup::default()
    };
    setup.client.limits.general_max = 40;
    let bed = start(setup).await;

    let outcomes = list_calls(&bed.portal, 6, 40).await;
    assert!(outcomes.iter().all(Result::is_ok), "{outcomes:?}");
    // The emulator held 20 of 40 slots for the other app the whole time.
    assert!(bed.emulator_stats().requests >= 40);
    let rejected = emulator_429s(&bed, "TEN_SECONDLY_ROLLING");
    assert!(rejected <= 1, "{rejected} requests answered 429");
    let budget = bed.portal.budget();
    assert_eq!(budget.limit, 40);
    assert!(
        budget.remaining <= 20,
        "our view leaves the other app its half: {budget:?}"
    );
}

#[tokio::test]
async fn ten_secondly_429s_wait_for_the_window_and_then_succeed() {
    let mut setup = Setup {
        tier: Tier::Custom {
            burst: 5,
            daily: 1_000_000,
        },
        settings: Settings {
            burst_window_ms: 500,
            ..Settings::default()
        },
        ..Setup::default()
    };
    // The client starts out believing in a far larger budget than the portal has.
    setup.client.limits.general_max = 1_000;
    let bed = start(setup).await;

    let outcomes = list_calls(&bed.portal, 12, 12).await;
    assert!(outcomes.iter().all(Result::is_ok), "{outcomes:?}");
    assert!(emulator_429s(&bed, "TEN_SECONDLY_ROLLING") >= 1);
    let stats = bed.portal.stats();
    assert!(
        stats.rate_limited >= 1 && stats.retries >= stats.rate_limited,
        "{stats:?}"
    );
    assert_eq!(
        bed.portal.budget().limit,
        5,
        "the headers corrected the tier"
    );
}

#[tokio::test]
async fn interactive_calls_get_the_429_back_with_retry_after_and_budget() {
    let mut setup = Setup {
        tier: Tier::Custom {
            burst: 3,
            daily: 1_000_000,
        },
        settings: Settings {
            retry_after_header: true,
            ..Settings::default()
        },
        ..Setup::default()
    };
    setup.client.limits.general_max = 1_000;
    let bed = start(setup).await;
    let interactive = bed.portal.interactive(Duration::from_secs(5));

    let outcomes = list_calls(&interactive, 6, 6).await;
    let limited: Vec<&ApiError> = outcomes.iter().filter_map(|o| o.as_ref().err()).collect();
    assert!(
        !limited.is_empty(),
        "some of 6 concurrent calls exceed a budget of 3"
    );
    for error in limited {
        match error {
            ApiError::RateLimited {
                policy,
                retry_after,
                budget,
            } => {
                assert_eq!(*policy, RateLimitPolicy::TenSecondlyRolling);
                assert!(
                    retry_after.is_some_and(|r| r >= Duration::from_secs(1)),
                    "Retry-After: 1 s honoured"
                );
                assert_eq!(budget.remaining, 0);
            }
            other => panic!("expected RateLimited, got {other:?}"),
        }
    }
    assert_eq!(
        bed.portal.stats().retries,
        0,
        "interactive 429s are passed on, not retried"
    );
    assert!(
        bed.portal.budget().reset_in_ms >= 500,
        "the lane waits out Retry-After"
    );
}

#[tokio::test]
async fn a_bounded_interactive_call_gives_up_locally_instead_of_queueing() {
    let setup = Setup {
        tier: Tier::Custom {
            burst: 2,
            daily: 1_000_000,
        },
        settings: Settings {
            burst_window_ms: 30_000,
            ..Settings::default()
        },
        ..Setup::default()
    };
    let bed = start(setup).await;
    let interactive = bed.portal.interactive(Duration::from_millis(100));
    interactive
        .list_page(ObjectType::Contacts, &list_one())
        .await
        .unwrap();
    interactive
        .list_page(ObjectType::Contacts, &list_one())
        .await
        .unwrap();
    let sent = bed.emulator_stats().requests;
    match interactive
        .list_page(ObjectType::Contacts, &list_one())
        .await
    {
        Err(ApiError::RateLimited {
            policy: RateLimitPolicy::Local,
            retry_after: Some(wait),
            ..
        }) => {
            assert!(wait > Duration::from_secs(1));
        }
        other => panic!("expected a local refusal, got {other:?}"),
    }
    assert_eq!(bed.emulator_stats().requests, sent, "nothing was sent");
}

#[tokio::test]
async fn daily_limit_parks_non_interactive_calls_until_the_reset() {
    let setup = Setup {
        tier: Tier::Custom {
            burst: 100,
            daily: 3,
        },
        ..Setup::default()
    };
    let bed = start(setup).await;
    for _ in 0..3 {
        bed.portal
            .list_page(ObjectType::Contacts, &list_one())
            .await
            .unwrap();
    }
    assert_eq!(
        bed.portal.budget().daily_remaining,
        Some(0),
        "X-HubSpot-RateLimit-Daily-Remaining read"
    );

    // Outbound work is parked locally: nothing reaches HubSpot.
    let sent = bed.emulator_stats().requests;
    let parked = bed
        .portal
        .list_page(ObjectType::Contacts, &list_one())
        .await;
    let Err(ApiError::DailyLimit { resets_at }) = parked else {
        panic!("expected DailyLimit, got {parked:?}")
    };
    assert_eq!(
        (resets_at.hour(), resets_at.minute()),
        (0, 0),
        "midnight UTC"
    );
    assert_eq!(bed.emulator_stats().requests, sent);

    // An interactive read is not parked: it asks HubSpot, which answers with the DAILY 429.
    let interactive = bed.portal.interactive(Duration::from_secs(1));
    assert!(matches!(
        interactive
            .list_page(ObjectType::Contacts, &list_one())
            .await,
        Err(ApiError::DailyLimit { .. })
    ));
    assert_eq!(bed.emulator_stats().requests, sent + 1);
    assert_eq!(emulator_429s(&bed, "DAILY"), 1);

    // A second client that has not seen the headers learns it from the DAILY 429.
    let other = HubspotClient::new(hubsync_hubspot::ClientConfig::with_base_url(
        bed.emu.base_url(),
    ))
    .unwrap();
    let fresh = other.portal(
        PORTAL,
        PortalCredentials::PrivateApp(SecretString::from(TOKEN)),
    );
    assert!(matches!(
        fresh.list_page(ObjectType::Contacts, &list_one()).await,
        Err(ApiError::DailyLimit { .. })
    ));
    assert_eq!(emulator_429s(&bed, "DAILY"), 2);
    assert!(fresh.budget().parked_until.is_some());
    let sent = bed.emulator_stats().requests;
    assert!(matches!(
        fresh.list_page(ObjectType::Contacts, &list_one()).await,
        Err(ApiError::DailyLimit { .. })
    ));
    assert_eq!(
        bed.emulator_stats().requests,
        sent,
        "parked after one DAILY 429: no retry loop"
    );
    assert_eq!(fresh.stats().retries, 0);
}

fn search_all() -> SearchRequest {
    SearchRequest {
        limit: 10,
        ..SearchRequest::default()
    }
}

#[tokio::test]
async fn search_lane_paces_itself_to_five_a_window_and_never_touches_the_general_budget() {
    let mut setup = Setup {
        settings: Settings {
            search_window_ms: 200,
            ..Settings::default()
        },
        ..Setup::default()
    };
    setup.client.limits.search_window = Duration::from_millis(200);
    let bed = start(setup).await;
    let general_before = bed.portal.budget().remaining;

    let mut set = JoinSet::new();
    for _ in 0..12 {
        let portal = bed.portal.clone();
        set.spawn(async move {
            portal
                .search(ObjectType::Contacts, &search_all())
                .await
                .map(drop)
        });
    }
    while let Some(done) = set.join_next().await {
        done.unwrap().unwrap();
    }
    assert_eq!(
        emulator_429s(&bed, "SECONDLY"),
        0,
        "paced below the search limit"
    );
    let stats = bed.portal.stats();
    assert_eq!(
        (
            stats.search_requests,
            stats.general_requests,
            stats.rate_limited
        ),
        (12, 0, 0)
    );
    assert_eq!(bed.portal.budget().remaining, general_before);
}

#[tokio::test]
async fn secondly_search_429s_are_waited_out_and_retried() {
    let mut setup = Setup {
        settings: Settings {
            search_per_second: 2,
            search_window_ms: 300,
            ..Settings::default()
        },
        ..Setup::default()
    };
    // The client believes in more search budget than the portal grants.
    setup.client.limits.search_max = 50;
    setup.client.limits.search_window = Duration::from_millis(300);
    let bed = start(setup).await;
    let mut set = JoinSet::new();
    for _ in 0..5 {
        let portal = bed.portal.clone();
        set.spawn(async move {
            portal
                .search(ObjectType::Contacts, &search_all())
                .await
                .map(drop)
        });
    }
    while let Some(done) = set.join_next().await {
        done.unwrap().unwrap();
    }
    assert!(emulator_429s(&bed, "SECONDLY") >= 1);
    assert_eq!(bed.portal.stats().general_requests, 0);
}
