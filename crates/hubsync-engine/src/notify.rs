//! Signed app webhooks: every change applied from HubSpot is posted to the app's registered
//! endpoints, durable until delivered (the deliveries are queued in the same transaction as the
//! change) and retried with backoff.
//!
//! Each POST carries `X-Hubsync-Timestamp` (epoch ms) and `X-Hubsync-Signature`:
//! `v1=` + hex(HMAC-SHA256(secret, timestamp + "." + body)).

use std::time::Duration;

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use crate::{Engine, EngineError, now_ms};

/// The signature header.
pub const SIGNATURE_HEADER: &str = "x-hubsync-signature";
/// The timestamp header.
pub const TIMESTAMP_HEADER: &str = "x-hubsync-timestamp";

/// Signs a body for an app endpoint.
pub fn sign(secret: &str, timestamp_ms: i64, body: &[u8]) -> String {
    // HMAC takes keys of any length.
    let mut mac = match <Hmac<Sha256> as KeyInit>::new_from_slice(secret.as_bytes()) {
        Ok(mac) => mac,
        Err(_) => return String::new(),
    };
    mac.update(timestamp_ms.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("v1={}", hex::encode(mac.finalize().into_bytes()))
}

/// Delivers up to `limit` due app webhooks. Returns how many were delivered.
pub async fn deliver_once(
    engine: &Engine,
    http: &reqwest::Client,
    limit: u32,
) -> Result<usize, EngineError> {
    let deliveries = engine
        .store
        .claim_app_deliveries(limit, Duration::from_secs(30))
        .await?;
    let mut delivered = 0;
    for d in deliveries {
        let body = serde_json::to_vec(&d.payload).unwrap_or_default();
        let ts = now_ms();
        let signature = sign(&d.endpoint.secret, ts, &body);
        let result = http
            .post(&d.endpoint.url)
            .header("content-type", "application/json")
            .header(TIMESTAMP_HEADER, ts.to_string())
            .header(SIGNATURE_HEADER, signature)
            .timeout(Duration::from_secs(5))
            .body(body)
            .send()
            .await;
        match result {
            Ok(r) if r.status().is_success() => {
                engine.store.complete_app_delivery(d.id).await?;
                delivered += 1;
            }
            outcome => {
                let delay = hubsync_core::retry::backoff(
                    d.attempts,
                    Duration::from_secs(1),
                    Duration::from_secs(3600),
                    rand::random::<f64>(),
                );
                tracing::warn!(endpoint = d.endpoint.id, portal = %d.endpoint.portal, attempts = d.attempts,
                    status = ?outcome.as_ref().ok().map(|r| r.status().as_u16()), "app webhook delivery failed; will retry");
                engine
                    .store
                    .retry_app_delivery(d.id, now_ms() + delay.as_millis() as i64)
                    .await?;
            }
        }
    }
    Ok(delivered)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_covers_timestamp_and_body() {
        let a = sign("secret", 1, b"{}");
        assert!(a.starts_with("v1="));
        assert_ne!(a, sign("secret", 2, b"{}"));
        assert_ne!(a, sign("secret", 1, b"{ }"));
        assert_ne!(a, sign("other", 1, b"{}"));
    }
}
