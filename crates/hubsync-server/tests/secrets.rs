//! The configured webhook secret and a portal's token never leave the process: not in any log
//! line (every level, captured by a global subscriber), and not in `/`, `/status.json` or
//! `/metrics`. A test binary of its own, because the subscriber is process-wide.

#[path = "it/common.rs"]
#[allow(dead_code)]
mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};

use common::{PORTAL, PUBLIC_URL, SECRET, TOKEN, body, now_ms, property_change, sign_v1, sign_v3};
use tracing_subscriber::fmt::MakeWriter;

/// Every log line, in memory.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("log buffer").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Captured {
    type Writer = Captured;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

#[tokio::test]
async fn configured_secrets_never_appear_in_logs_or_pages() {
    let logs = Captured::default();
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(logs.clone())
        .with_ansi(false)
        .init();

    let server = common::start_with(|mut config| {
        if let Some(webhook) = config.webhook.as_mut() {
            webhook.accept_legacy = true;
        }
        config
    })
    .await;
    let delivery = body(&[property_change(PORTAL, 1, 501, "email", "x@example.com")]);
    let uri = format!("{PUBLIC_URL}/webhooks/hubspot");
    let mut seen = Vec::new();

    // Every path through the receiver: accepted, duplicate, forged, stale, legacy, malformed.
    seen.push(server.deliver(&delivery).await.status().as_u16());
    seen.push(server.deliver(&delivery).await.status().as_u16());
    seen.push(
        server
            .deliver_signed(&delivery, "forged", now_ms())
            .await
            .status()
            .as_u16(),
    );
    seen.push(
        server
            .deliver_signed(&delivery, SECRET, now_ms() - 600_000)
            .await
            .status()
            .as_u16(),
    );
    seen.push(server.deliver(b"{broken").await.status().as_u16());
    let v1 = server
        .http
        .post(server.url("/webhooks/hubspot"))
        .header("x-hubspot-signature", sign_v1(SECRET, &delivery))
        .header("x-hubspot-signature-version", "v1")
        .header("authorization", format!("Bearer {TOKEN}"))
        .body(delivery.clone())
        .send()
        .await
        .expect("request");
    seen.push(v1.status().as_u16());
    let ts = now_ms();
    let wrong_url = server
        .http
        .post(server.url("/webhooks/hubspot?secret=0"))
        .header(
            "x-hubspot-signature-v3",
            sign_v3(SECRET, "POST", &uri, &delivery, ts),
        )
        .header("x-hubspot-request-timestamp", ts.to_string())
        .body(delivery.clone())
        .send()
        .await
        .expect("request");
    seen.push(wrong_url.status().as_u16());
    assert_eq!(seen, [200, 200, 401, 401, 400, 200, 401]);

    for path in ["/", "/status.json", "/metrics", "/healthz", "/readyz"] {
        let (status, text) = server.get(path).await;
        assert_eq!(status, 200, "{path}");
        assert!(
            !text.contains(SECRET),
            "the webhook secret appears in {path}"
        );
        assert!(!text.contains(TOKEN), "the portal token appears in {path}");
        assert!(
            !text.contains("pat-na1"),
            "a token prefix appears in {path}"
        );
    }
    server.stop().await;

    let captured =
        String::from_utf8(logs.0.lock().expect("log buffer").clone()).expect("utf-8 logs");
    assert!(
        captured.contains("webhook delivery refused") && captured.contains("portal=4242"),
        "the subscriber captured the server's logs:\n{captured}"
    );
    assert!(
        !captured.contains(SECRET),
        "the webhook secret was logged:\n{captured}"
    );
    assert!(
        !captured.contains(TOKEN),
        "the portal token was logged:\n{captured}"
    );
}
