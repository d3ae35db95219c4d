//! The webhook receiver over real HTTP: what is stored, what is refused, and with which status.

use std::time::Duration;

use hubsync_core::PortalId;
use serde_json::{Value, json};

use crate::common::{
    self, PORTAL, PUBLIC_URL, SECRET, body, now_ms, property_change, sign_v1, sign_v3,
};

async fn json_body(response: reqwest::Response) -> Value {
    response.json().await.expect("json body")
}

#[test]
fn test_signer_reproduces_hubspots_published_v3_vector() {
    // The v3 example from HubSpot's documentation (api-digest §5.4).
    let signature = sign_v3(
        "cfc68c0b-4b4e-4ef8-b764-95350e4ea479",
        "POST",
        "https://webhook.site/335453f5-94b3-49d9-b684-a55354d4b8df",
        br#"[{"eventId":531833541,"subscriptionId":3923621,"portalId":48807704,"appId":16111050,"occurredAt":1752613920733,"subscriptionType":"contact.creation","attemptNumber":0,"objectId":138017612137,"changeFlag":"CREATED","changeSource":"CRM_UI","sourceId":"userId:76023669"}]"#,
        1752613922216,
    );
    assert_eq!(signature, "gbj1XPRvUt0noT7i7fXfTzOD4sLzQmf0VT28ZYq0EYg=");
}

#[tokio::test]
async fn signed_delivery_is_stored_verbatim_and_answered_200() {
    let server = common::start().await;
    let events = vec![
        property_change(PORTAL, 1, 501, "email", "ada@example.com"),
        property_change(PORTAL, 2, 501, "firstname", "Ada"),
        property_change(PORTAL, 3, 502, "email", "grace@example.com"),
    ];
    let response = server.deliver(&body(&events)).await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        json_body(response).await,
        json!({"stored": 3, "duplicates": 0, "skipped": 0})
    );

    let claimed = server
        .store()
        .claim_inbox(PORTAL, 100, Duration::from_secs(30), "test")
        .await
        .expect("claim");
    assert_eq!(claimed.len(), 3);
    let mut payloads: Vec<Value> = claimed.iter().map(|i| i.payload.clone()).collect();
    payloads.sort_by_key(|p| p["eventId"].as_u64());
    assert_eq!(payloads, events, "the inbox keeps each raw event");
    assert!(
        claimed
            .iter()
            .all(|i| i.subscription_type == "contact.propertyChange")
    );
    server.stop().await;
}

#[tokio::test]
async fn redelivered_events_are_deduplicated_and_still_answered_200() {
    let server = common::start().await;
    let events = vec![
        property_change(PORTAL, 10, 601, "email", "a@example.com"),
        property_change(PORTAL, 11, 601, "phone", "+1 555 0100"),
    ];
    assert_eq!(server.deliver(&body(&events)).await.status(), 200);

    // HubSpot's retry: same events, attemptNumber raised, new timestamp and signature.
    let retried: Vec<Value> = events
        .iter()
        .map(|e| {
            let mut e = e.clone();
            e["attemptNumber"] = json!(3);
            e
        })
        .collect();
    let response = server.deliver(&body(&retried)).await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        json_body(response).await,
        json!({"stored": 0, "duplicates": 2, "skipped": 0})
    );
    assert_eq!(server.inbox_depth(PORTAL).await, 2);

    // The same byte-identical delivery once more.
    assert_eq!(server.deliver(&body(&events)).await.status(), 200);
    assert_eq!(server.inbox_depth(PORTAL).await, 2);
    server.stop().await;
}

#[tokio::test]
async fn forged_signatures_get_401_and_store_nothing() {
    let server = common::start().await;
    let delivery = body(&[property_change(PORTAL, 1, 501, "email", "x@example.com")]);

    let wrong_secret = server
        .deliver_signed(&delivery, "not-the-secret", now_ms())
        .await;
    assert_eq!(wrong_secret.status(), 401);

    // A valid signature of one body presented with another.
    let ts = now_ms();
    let uri = format!("{PUBLIC_URL}/webhooks/hubspot");
    let signature = sign_v3(SECRET, "POST", &uri, &delivery, ts);
    let tampered = body(&[property_change(PORTAL, 1, 501, "email", "evil@example.com")]);
    let response = server
        .http
        .post(server.url("/webhooks/hubspot"))
        .header("x-hubspot-signature-v3", signature)
        .header("x-hubspot-request-timestamp", ts.to_string())
        .body(tampered)
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 401);

    // Signed for the socket's own address instead of the public URL HubSpot calls.
    let local_uri = server.url("/webhooks/hubspot");
    let response = server
        .http
        .post(&local_uri)
        .header(
            "x-hubspot-signature-v3",
            sign_v3(SECRET, "POST", &local_uri, &delivery, ts),
        )
        .header("x-hubspot-request-timestamp", ts.to_string())
        .body(delivery.clone())
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 401);

    assert_eq!(server.inbox_depth(PORTAL).await, 0);
    server.stop().await;
}

#[tokio::test]
async fn missing_signature_gets_401() {
    let server = common::start().await;
    let delivery = body(&[property_change(PORTAL, 1, 501, "email", "x@example.com")]);
    let response = server
        .http
        .post(server.url("/webhooks/hubspot"))
        .body(delivery.clone())
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 401);

    // A v3 signature without its timestamp is just as unauthenticated.
    let uri = format!("{PUBLIC_URL}/webhooks/hubspot");
    let response = server
        .http
        .post(server.url("/webhooks/hubspot"))
        .header(
            "x-hubspot-signature-v3",
            sign_v3(SECRET, "POST", &uri, &delivery, now_ms()),
        )
        .body(delivery)
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 401);
    assert_eq!(server.inbox_depth(PORTAL).await, 0);
    server.stop().await;
}

#[tokio::test]
async fn correctly_signed_but_stale_timestamp_gets_401() {
    let server = common::start().await;
    let delivery = body(&[property_change(PORTAL, 1, 501, "email", "x@example.com")]);
    let six_minutes_ago = now_ms() - 6 * 60 * 1000;
    let response = server
        .deliver_signed(&delivery, SECRET, six_minutes_ago)
        .await;
    assert_eq!(response.status(), 401);
    // A timestamp four minutes old is still inside HubSpot's window.
    let four_minutes_ago = now_ms() - 4 * 60 * 1000;
    assert_eq!(
        server
            .deliver_signed(&delivery, SECRET, four_minutes_ago)
            .await
            .status(),
        200
    );
    assert_eq!(server.inbox_depth(PORTAL).await, 1);
    server.stop().await;
}

#[tokio::test]
async fn body_over_the_limit_gets_413() {
    let server = common::start_with(|mut config| {
        config.max_body_bytes = 4096;
        config
    })
    .await;
    let events: Vec<Value> = (1..=100)
        .map(|i| property_change(PORTAL, i, 700 + i, "email", "someone@example.com"))
        .collect();
    let delivery = body(&events);
    assert!(delivery.len() > 4096);
    let response = server.deliver(&delivery).await;
    assert_eq!(response.status(), 413);
    assert_eq!(server.inbox_depth(PORTAL).await, 0);

    // A chunked body, without a Content-Length, is cut off the same way.
    let ts = now_ms();
    let uri = format!("{PUBLIC_URL}/webhooks/hubspot");
    let signature = sign_v3(SECRET, "POST", &uri, &delivery, ts);
    let status = post_chunked(&server.base, "/webhooks/hubspot", &signature, ts, &delivery).await;
    assert_eq!(status, 413);
    assert_eq!(server.inbox_depth(PORTAL).await, 0);
    server.stop().await;
}

/// Posts `body` with `Transfer-Encoding: chunked` over a raw connection; returns the status.
async fn post_chunked(base: &str, path: &str, signature: &str, ts: i64, body: &[u8]) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let mut request = format!(
        "POST {path} HTTP/1.1\r\nhost: {addr}\r\nx-hubspot-signature-v3: {signature}\r\n\
         x-hubspot-request-timestamp: {ts}\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n"
    )
    .into_bytes();
    for chunk in body.chunks(1024) {
        request.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        request.extend_from_slice(chunk);
        request.extend_from_slice(b"\r\n");
    }
    request.extend_from_slice(b"0\r\n\r\n");
    // The server may answer and close before it has read everything; that is fine.
    let _ = stream.write_all(&request).await;
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response).await;
    let text = String::from_utf8_lossy(&response);
    text.split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .expect("a status line")
}

#[tokio::test]
async fn malformed_signed_bodies_get_400_and_store_nothing() {
    let server = common::start().await;
    for malformed in [
        &b"{not json"[..],
        br#"{"eventId":1}"#,
        br#"[{"eventId":1,"subscriptionId":2}]"#,
        br#"[{"eventId":"x","subscriptionId":2,"portalId":4242,"occurredAt":1,"subscriptionType":"contact.creation"}]"#,
        b"",
    ] {
        let response = server.deliver(malformed).await;
        assert_eq!(response.status(), 400, "{}", String::from_utf8_lossy(malformed));
    }
    // One bad event spoils the whole delivery: nothing is half-stored.
    let mut mixed = vec![property_change(PORTAL, 1, 501, "email", "x@example.com")];
    mixed.push(json!({"eventId": 2, "portalId": 4242}));
    assert_eq!(server.deliver(&body(&mixed)).await.status(), 400);
    assert_eq!(server.inbox_depth(PORTAL).await, 0);
    server.stop().await;
}

#[tokio::test]
async fn unknown_subscription_type_is_stored_and_answered_200() {
    let server = common::start().await;
    let events = vec![
        json!({"eventId": 5, "subscriptionId": 9, "portalId": PORTAL.get(), "occurredAt": 1787843156000_i64,
               "subscriptionType": "ticket.creation", "attemptNumber": 0, "objectId": 77}),
        json!({"eventId": 6, "subscriptionId": 9, "portalId": PORTAL.get(), "occurredAt": 1787843156001_i64,
               "subscriptionType": "conversation.newMessage", "attemptNumber": 0, "messageId": "m-1"}),
    ];
    let response = server.deliver(&body(&events)).await;
    assert_eq!(response.status(), 200);
    assert_eq!(json_body(response).await["stored"], 2);
    let claimed = server
        .store()
        .claim_inbox(PORTAL, 10, Duration::from_secs(30), "test")
        .await
        .expect("claim");
    let mut types: Vec<&str> = claimed
        .iter()
        .map(|i| i.subscription_type.as_str())
        .collect();
    types.sort_unstable();
    assert_eq!(types, ["conversation.newMessage", "ticket.creation"]);
    assert!(claimed.iter().all(|i| i.object_type.is_none()));
    server.stop().await;
}

#[tokio::test]
async fn events_of_an_unknown_portal_are_skipped_but_acknowledged() {
    let server = common::start().await;
    let stranger = PortalId(999_001);
    let events = vec![
        property_change(PORTAL, 1, 501, "email", "known@example.com"),
        property_change(stranger, 2, 502, "email", "stranger@example.com"),
        property_change(stranger, 3, 503, "email", "stranger2@example.com"),
    ];
    let response = server.deliver(&body(&events)).await;
    assert_eq!(response.status(), 200, "so that HubSpot stops retrying");
    assert_eq!(
        json_body(response).await,
        json!({"stored": 1, "duplicates": 0, "skipped": 2})
    );
    assert_eq!(server.inbox_depth(PORTAL).await, 1);
    assert_eq!(server.inbox_depth(stranger).await, 0);

    // Only unknown portals: still 200, nothing stored.
    let response = server
        .deliver(&body(&[property_change(
            stranger,
            4,
            504,
            "email",
            "s@example.com",
        )]))
        .await;
    assert_eq!(response.status(), 200);
    assert_eq!(server.inbox_depth(stranger).await, 0);
    server.stop().await;
}

#[tokio::test]
async fn legacy_v1_signatures_are_accepted_only_when_configured() {
    let delivery = body(&[property_change(PORTAL, 1, 501, "email", "x@example.com")]);
    let post_v1 = |server: &common::TestServer| {
        server
            .http
            .post(server.url("/webhooks/hubspot"))
            .header("x-hubspot-signature", sign_v1(SECRET, &delivery))
            .header("x-hubspot-signature-version", "v1")
            .body(delivery.clone())
            .send()
    };

    let strict = common::start().await;
    assert_eq!(post_v1(&strict).await.expect("request").status(), 401);
    assert_eq!(strict.inbox_depth(PORTAL).await, 0);
    strict.stop().await;

    let lenient = common::start_with(|mut config| {
        if let Some(webhook) = config.webhook.as_mut() {
            webhook.accept_legacy = true;
        }
        config
    })
    .await;
    assert_eq!(post_v1(&lenient).await.expect("request").status(), 200);
    assert_eq!(lenient.inbox_depth(PORTAL).await, 1);
    let forged = lenient
        .http
        .post(lenient.url("/webhooks/hubspot"))
        .header("x-hubspot-signature", sign_v1("wrong", &delivery))
        .header("x-hubspot-signature-version", "v1")
        .body(delivery.clone())
        .send()
        .await
        .expect("request");
    assert_eq!(forged.status(), 401);
    lenient.stop().await;
}

#[tokio::test]
async fn signature_covers_the_query_string_as_hubspot_sent_it() {
    let server = common::start().await;
    let delivery = body(&[property_change(PORTAL, 1, 501, "email", "x@example.com")]);
    let ts = now_ms();
    let uri = format!("{PUBLIC_URL}/webhooks/hubspot?source=hubspot&b=2");
    let response = server
        .http
        .post(server.url("/webhooks/hubspot?source=hubspot&b=2"))
        .header(
            "x-hubspot-signature-v3",
            sign_v3(SECRET, "POST", &uri, &delivery, ts),
        )
        .header("x-hubspot-request-timestamp", ts.to_string())
        .body(delivery.clone())
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 200);
    // The same signature on a reordered query no longer matches.
    let response = server
        .http
        .post(server.url("/webhooks/hubspot?b=2&source=hubspot"))
        .header(
            "x-hubspot-signature-v3",
            sign_v3(SECRET, "POST", &uri, &delivery, ts),
        )
        .header("x-hubspot-request-timestamp", ts.to_string())
        .body(delivery)
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 401);
    server.stop().await;
}

#[tokio::test]
async fn without_webhook_settings_the_receiver_is_not_mounted() {
    let server = common::start_with(|mut config| {
        config.webhook = None;
        config
    })
    .await;
    let delivery = body(&[property_change(PORTAL, 1, 501, "email", "x@example.com")]);
    assert_eq!(server.deliver(&delivery).await.status(), 404);
    server.stop().await;
}

#[tokio::test]
async fn shutdown_finishes_the_delivery_in_flight_then_run_returns() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut server = common::start().await;
    let events: Vec<Value> = (1..=100)
        .map(|i| property_change(PORTAL, i, 900 + i, "email", "late@example.com"))
        .collect();
    let delivery = body(&events);
    let ts = now_ms();
    let signature = sign_v3(
        SECRET,
        "POST",
        &format!("{PUBLIC_URL}/webhooks/hubspot"),
        &delivery,
        ts,
    );
    let addr = server.base.trim_start_matches("http://").to_owned();
    let mut stream = tokio::net::TcpStream::connect(&addr)
        .await
        .expect("connect");
    let head = format!(
        "POST /webhooks/hubspot HTTP/1.1\r\nhost: {addr}\r\nx-hubspot-signature-v3: {signature}\r\n\
         x-hubspot-request-timestamp: {ts}\r\ncontent-length: {}\r\n\r\n",
        delivery.len()
    );
    stream.write_all(head.as_bytes()).await.expect("head");
    let (first, rest) = delivery.split_at(delivery.len() / 2);
    stream.write_all(first).await.expect("first half");
    tokio::time::sleep(Duration::from_millis(200)).await;

    // SIGTERM arrives while the delivery is half-received.
    server.begin_shutdown();
    tokio::time::sleep(Duration::from_millis(100)).await;
    stream.write_all(rest).await.expect("second half");
    let mut response = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&response).contains("\r\n\r\n") {
        let n = stream.read(&mut buf).await.expect("read");
        assert!(n > 0, "connection closed without an answer");
        response.extend_from_slice(&buf[..n]);
    }
    assert!(
        String::from_utf8_lossy(&response).starts_with("HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&response)
    );
    assert_eq!(
        server.inbox_depth(PORTAL).await,
        100,
        "the whole delivery was stored"
    );
    drop(stream);
    // New connections are no longer served, and run returns.
    let base = server.base.clone();
    server.stop().await;
    assert!(reqwest::get(format!("{base}/healthz")).await.is_err());
}
