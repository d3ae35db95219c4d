//! The status page, `/status.json`, `/metrics`, `/healthz` and `/readyz` over real HTTP.

use hubsync_core::{Conflict, ConflictPolicy, HubspotId, LocalId, ObjectType, Side};
use hubsync_store::{ApplyOp, DeadLetterSource, NewDeadLetter, OutboxOp};
use serde_json::{Value, json};

use crate::common::{self, PORTAL, PORTAL_NAME, TestServer, body, property_change};

/// Puts known work in every queue and counter of the test portal: 2 outbox items, 3 inbox
/// events, 1 dead letter, 1 conflict, echoes 4/5/6, contacts imported.
pub async fn seed(server: &TestServer) {
    let store = server.store();
    for local in [1, 2] {
        store
            .enqueue_outbox(
                PORTAL,
                ObjectType::Contacts,
                LocalId(local),
                OutboxOp::Upsert,
            )
            .await
            .expect("outbox");
    }
    let events: Vec<Value> = (1..=3)
        .map(|i| property_change(PORTAL, i, 800 + i, "email", "x@example.com"))
        .collect();
    assert_eq!(server.deliver(&body(&events)).await.status(), 200);
    store
        .add_dead_letter(
            PORTAL,
            &NewDeadLetter {
                source: DeadLetterSource::Outbound,
                object_type: Some(ObjectType::Deals),
                local_id: Some(LocalId(9)),
                hubspot_id: None,
                reason: "HubSpot 400: Property values were not valid".to_owned(),
                category: "validation".to_owned(),
                payload: json!({}),
                attempts: 1,
            },
        )
        .await
        .expect("dead letter");
    let ops = vec![
        ApplyOp::Conflicts {
            object_type: ObjectType::Contacts,
            local_id: Some(LocalId(1)),
            hubspot_id: Some(HubspotId(801)),
            conflicts: vec![Conflict {
                field: "job_title".to_owned(),
                base: json!("Engineer"),
                local: json!("Staff Engineer"),
                local_ts: 2_000,
                remote: json!("Principal <Engineer>"),
                remote_ts: 1_000,
                policy: ConflictPolicy::LatestWins,
                winner: Side::Local,
            }],
        },
        ApplyOp::Counter {
            name: "echo.change_source".to_owned(),
            delta: 4,
        },
        ApplyOp::Counter {
            name: "echo.origin".to_owned(),
            delta: 5,
        },
        ApplyOp::Counter {
            name: "echo.fingerprint".to_owned(),
            delta: 6,
        },
        ApplyOp::Counter {
            name: "conflicts".to_owned(),
            delta: 1,
        },
        ApplyOp::SetCursor {
            name: "import:contacts".to_owned(),
            value: "done".to_owned(),
        },
        ApplyOp::SetCursor {
            name: "modified:contacts".to_owned(),
            value: "1787843156000".to_owned(),
        },
    ];
    store
        .apply_inbound(PORTAL, ops, &[], None)
        .await
        .expect("apply");
}

#[tokio::test]
async fn status_json_reports_a_portals_queues_counters_and_conflicts() {
    let server = common::start().await;
    seed(&server).await;
    let (status, text) = server.get("/status.json").await;
    assert_eq!(status, 200);
    let report: Value = serde_json::from_str(&text).expect("json");
    let portal = &report["portals"][0];
    assert_eq!(portal["portal_id"], PORTAL.get());
    assert_eq!(portal["name"], PORTAL_NAME);
    assert_eq!(portal["status"], "active");
    assert_eq!(
        portal["queues"],
        json!({"outbox": 2, "inbox": 3, "dead_letters": 1, "conflicts": 1})
    );
    assert_eq!(
        portal["echoes"],
        json!({"change_source": 4, "origin": 5, "fingerprint": 6})
    );
    assert_eq!(portal["reconcile"]["types"]["contacts"]["import"], "done");
    assert_eq!(
        portal["reconcile"]["types"]["deals"]["import"],
        "not started"
    );
    assert_eq!(
        portal["reconcile"]["types"]["contacts"]["reconciled_up_to"],
        "2026-08-27T15:05:56Z"
    );
    let conflict = &portal["recent_conflicts"][0];
    assert_eq!(conflict["field"], "job_title");
    assert_eq!(conflict["winner"], "local");
    assert_eq!(conflict["policy"], "latest_wins");
    let budget = &portal["budget"];
    assert!(budget["limit"].as_u64().is_some_and(|l| l > 0), "{budget}");
    assert_eq!(budget["samples"].as_array().map(Vec::len), Some(1));
    server.stop().await;
}

#[tokio::test]
async fn status_page_shows_a_portals_queue_depths_and_counters() {
    let server = common::start().await;
    seed(&server).await;
    let (status, html) = server.get("/").await;
    assert_eq!(status, 200);
    assert!(html.starts_with("<!doctype html>"));
    assert!(html.contains(PORTAL_NAME));
    for (field, value) in [
        ("queues.outbox", "2"),
        ("queues.inbox", "3"),
        ("queues.dead_letters", "1"),
        ("echoes.change_source", "4"),
        ("echoes.origin", "5"),
        ("echoes.fingerprint", "6"),
        ("reconcile.types.contacts.import", "done"),
    ] {
        let cell = format!("data-f=\"{field}\">{value}<");
        assert!(html.contains(&cell), "missing {cell}");
    }
    assert!(html.contains("job_title"));
    assert!(
        html.contains("Principal &lt;Engineer&gt;"),
        "conflict values are escaped"
    );
    assert!(html.contains("<svg class=\"chart\""));
    assert!(
        !html.contains("src=\"http"),
        "nothing loaded from elsewhere"
    );
    server.stop().await;
}

#[tokio::test]
async fn status_page_served_with_a_strict_content_security_policy() {
    let server = common::start().await;
    let response = server
        .http
        .get(server.url("/"))
        .send()
        .await
        .expect("request");
    let csp = response
        .headers()
        .get("content-security-policy")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(csp.contains("default-src 'none'"), "{csp}");
    assert!(csp.contains("connect-src 'self'"), "{csp}");
    server.stop().await;
}

#[tokio::test]
async fn metrics_render_queue_depths_and_webhook_counters() {
    let server = common::start().await;
    seed(&server).await;
    let response = server
        .http
        .get(server.url("/metrics"))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 200);
    assert!(
        response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("text/plain"))
    );
    let text = response.text().await.expect("body");
    for line in [
        "# TYPE hubsync_queue_depth gauge",
        "hubsync_queue_depth{portal=\"4242\",queue=\"outbox\"} 2",
        "hubsync_queue_depth{portal=\"4242\",queue=\"inbox\"} 3",
        "hubsync_queue_depth{portal=\"4242\",queue=\"dead_letters\"} 1",
        "hubsync_conflicts_recorded{portal=\"4242\"} 1",
        "hubsync_echoes_dropped_recorded{portal=\"4242\",path=\"origin\"} 5",
        "hubsync_portal_status{portal=\"4242\",status=\"active\"} 1",
        "hubsync_webhook_events_total{outcome=\"stored\"}",
    ] {
        assert!(text.contains(line), "missing `{line}` in\n{text}");
    }
    server.stop().await;
}

#[tokio::test]
async fn healthz_and_readyz_answer_while_the_database_does() {
    let server = common::start().await;
    assert_eq!(server.get("/healthz").await.0, 200);
    assert_eq!(server.get("/readyz").await.0, 200);
    server.store().close().await;
    assert_eq!(
        server.get("/healthz").await.0,
        200,
        "the process is still up"
    );
    assert_eq!(server.get("/readyz").await.0, 503, "but not ready");
    // And a delivery is refused (HubSpot retries) rather than acknowledged unstored.
    let delivery = body(&[property_change(PORTAL, 1, 501, "email", "x@example.com")]);
    assert_eq!(server.deliver(&delivery).await.status(), 503);
    server.stop().await;
}

#[tokio::test]
async fn the_unified_api_is_served_by_the_same_router() {
    let server = common::start().await;
    let (status, text) = server.get("/openapi.json").await;
    assert_eq!(status, 200);
    assert!(text.contains("/unified/crm/"), "{text}");
    server.stop().await;
}

#[tokio::test]
async fn the_cli_status_report_holds_the_same_data_as_status_json() {
    let server = common::start().await;
    seed(&server).await;
    let report = hubsync_server::status::report(&server.engine)
        .await
        .expect("report");
    let from_cli = serde_json::to_value(report.portals[0].queues).expect("json");
    let (_, text) = server.get("/status.json").await;
    let from_http: Value = serde_json::from_str(&text).expect("json");
    assert_eq!(from_cli, from_http["portals"][0]["queues"]);
    assert_eq!(report.portals[0].echoes.origin, 5);
    server.stop().await;
}
