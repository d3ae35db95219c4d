//! Transient failures: 5xx retried with backoff; persistent failure opens the portal's circuit.

use std::time::Duration;

use hubsync_core::{ObjectType, PortalId};
use hubsync_emulator::Faults;
use hubsync_hubspot::model::ListParams;
use hubsync_hubspot::{ApiError, CircuitState, PortalCredentials};
use secrecy::SecretString;

use crate::common::{Setup, start};

fn list_one() -> ListParams {
    ListParams {
        limit: Some(1),
        ..ListParams::default()
    }
}

#[tokio::test]
async fn server_errors_are_retried_with_backoff_until_they_succeed() {
    let mut setup = Setup {
        faults: Faults {
            api_5xx_pct: 40.0,
            ..Faults::default()
        },
        ..Setup::default()
    };
    setup.client.retry.max_attempts = 10;
    setup.client.breaker.failure_threshold = 1_000;
    let bed = start(setup).await;
    for _ in 0..20 {
        bed.portal
            .list_page(ObjectType::Contacts, &list_one())
            .await
            .unwrap();
    }
    let injected = bed.emulator_stats().injected_5xx;
    assert!(injected >= 1, "the fault fired");
    let stats = bed.portal.stats();
    assert_eq!(stats.transient_failures, injected);
    assert_eq!(stats.retries, injected);
}

#[tokio::test]
async fn persistent_failures_open_the_circuit_for_that_portal_only() {
    let mut setup = Setup {
        faults: Faults {
            api_5xx_pct: 100.0,
            ..Faults::default()
        },
        ..Setup::default()
    };
    setup.client.retry.max_attempts = 3;
    setup.client.breaker.failure_threshold = 3;
    setup.client.breaker.cool_down = Duration::from_millis(300);
    let bed = start(setup).await;
    let bystander = bed.hubspot.portal(
        PortalId(7),
        PortalCredentials::PrivateApp(SecretString::from("other")),
    );

    match bed
        .portal
        .list_page(ObjectType::Contacts, &list_one())
        .await
    {
        Err(ApiError::Server {
            attempts: 3,
            status,
            ..
        }) => assert!(status >= 500),
        other => panic!("expected a server error after 3 attempts, got {other:?}"),
    }
    let sent = bed.emulator_stats().requests;
    assert!(matches!(
        bed.portal
            .list_page(ObjectType::Contacts, &list_one())
            .await,
        Err(ApiError::CircuitOpen { .. })
    ));
    assert_eq!(
        bed.emulator_stats().requests,
        sent,
        "an open circuit sends nothing"
    );
    assert!(matches!(
        bed.portal.status().circuit,
        CircuitState::Open { .. }
    ));
    assert_eq!(bystander.status().circuit, CircuitState::Closed);

    bed.admin().set_faults(Faults::default());
    tokio::time::sleep(Duration::from_millis(350)).await;
    bed.portal
        .list_page(ObjectType::Contacts, &list_one())
        .await
        .expect("the half-open probe succeeds");
    assert_eq!(bed.portal.status().circuit, CircuitState::Closed);
}

#[tokio::test]
async fn timeouts_are_retried_and_reported_as_transport_errors() {
    let mut setup = Setup {
        faults: Faults {
            api_latency_pct: 100.0,
            api_latency_ms: 400,
            ..Faults::default()
        },
        ..Setup::default()
    };
    setup.client.request_timeout = Duration::from_millis(100);
    setup.client.retry.max_attempts = 2;
    let bed = start(setup).await;
    match bed
        .portal
        .list_page(ObjectType::Contacts, &list_one())
        .await
    {
        Err(ApiError::Transport {
            attempts: 2,
            source,
        }) => assert!(source.is_timeout(), "{source}"),
        other => panic!("expected a timeout after 2 attempts, got {other:?}"),
    }
    let stats = bed.portal.stats();
    assert_eq!(
        (stats.requests, stats.retries, stats.transient_failures),
        (2, 1, 2)
    );
}
