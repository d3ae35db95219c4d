//! The pure webhook module against the emulator's real deliveries: every delivery the
//! emulator POSTs verifies (v3 and v1) and parses; a tampered one does not.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hubsync_core::{AppId, ObjectType};
use hubsync_emulator::{DEFAULT_USER_ID, ObjectKind};
use hubsync_hubspot::webhooks::{
    EventKind, SignatureError, SignatureVerifier, SignatureVersion, SignedRequest, parse_delivery,
};
use secrecy::SecretString;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

use crate::common::{APP, PORTAL, Setup, emulator};

const SECRET: &str = "webhook-client-secret";

/// One received request: method, path with query, headers, raw body.
struct Received {
    method: String,
    target: String,
    headers: http::HeaderMap,
    body: Vec<u8>,
}

/// A minimal HTTP/1.1 receiver that answers 204 and hands every request to the test.
async fn receiver() -> (String, mpsc::UnboundedReceiver<Received>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "http://{}/hubspot/webhooks?source=emulator",
        listener.local_addr().unwrap()
    );
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 8192];
                loop {
                    let head_end = buf.windows(4).position(|w| w == b"\r\n\r\n");
                    if let Some(end) = head_end {
                        let head = String::from_utf8_lossy(&buf[..end]).into_owned();
                        let mut lines = head.split("\r\n");
                        let mut request_line = lines.next().unwrap_or_default().split(' ');
                        let method = request_line.next().unwrap_or_default().to_owned();
                        let target = request_line.next().unwrap_or_default().to_owned();
                        let mut headers = http::HeaderMap::new();
                        for line in lines {
                            if let Some((k, v)) = line.split_once(':') {
                                headers.append(
                                    http::HeaderName::from_bytes(k.trim().as_bytes()).unwrap(),
                                    http::HeaderValue::from_str(v.trim()).unwrap(),
                                );
                            }
                        }
                        let length: usize = headers
                            .get("content-length")
                            .and_then(|v| v.to_str().ok())
                            .and_then(|v| v.parse().ok())
                            .unwrap_or(0);
                        while buf.len() < end + 4 + length {
                            let n = socket.read(&mut chunk).await.unwrap();
                            if n == 0 {
                                return;
                            }
                            buf.extend_from_slice(&chunk[..n]);
                        }
                        let body = buf[end + 4..end + 4 + length].to_vec();
                        buf.drain(..end + 4 + length);
                        let _ = tx.send(Received {
                            method,
                            target,
                            headers,
                            body,
                        });
                        socket
                            .write_all(b"HTTP/1.1 204 No Content\r\ncontent-length: 0\r\n\r\n")
                            .await
                            .unwrap();
                        continue;
                    }
                    let n = socket.read(&mut chunk).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                }
            });
        }
    });
    (url, rx)
}

fn now_ms() -> i64 {
    i64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis(),
    )
    .unwrap()
}

#[tokio::test]
async fn emulator_deliveries_verify_and_parse_and_tampering_is_caught() {
    let (url, mut deliveries) = receiver().await;
    let emu = emulator(&Setup::default()).await;
    emu.admin()
        .set_webhook(PORTAL.get(), Some(url.clone()), Some(SECRET.into()))
        .unwrap();
    let id = emu
        .admin()
        .create(
            PORTAL.get(),
            ObjectKind::Contact,
            [("email", "hook@example.com")],
            DEFAULT_USER_ID,
        )
        .unwrap();

    let delivery = tokio::time::timeout(Duration::from_secs(10), deliveries.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(delivery.method, "POST");
    // The URI HubSpot called, as the receiver reconstructs it from its own address.
    let uri = format!(
        "{}{}",
        url.split("/hubspot").next().unwrap(),
        delivery.target
    );
    assert_eq!(uri, url);
    let verifier = SignatureVerifier::new(SecretString::from(SECRET));
    let request = SignedRequest {
        method: "POST",
        uri: &uri,
        body: &delivery.body,
        headers: &delivery.headers,
    };
    assert_eq!(
        verifier.verify(&request, now_ms()),
        Ok(SignatureVersion::V3)
    );

    // The v1 header the emulator also sends verifies only once legacy schemes are enabled.
    let mut v1_only = delivery.headers.clone();
    v1_only.remove("x-hubspot-signature-v3");
    let v1 = SignedRequest {
        headers: &v1_only,
        ..request
    };
    assert!(verifier.verify(&v1, now_ms()).is_err());
    assert_eq!(
        verifier.clone().allow_legacy(true).verify(&v1, now_ms()),
        Ok(SignatureVersion::V1)
    );

    let mut tampered = delivery.body.clone();
    let at = tampered
        .iter()
        .position(|b| *b == b'0' || *b == b'1')
        .unwrap();
    tampered[at] = if tampered[at] == b'0' { b'1' } else { b'0' };
    let forged = SignedRequest {
        body: &tampered,
        ..request
    };
    assert_eq!(
        verifier.verify(&forged, now_ms()),
        Err(SignatureError::Mismatch)
    );

    let events = parse_delivery(&delivery.body).unwrap();
    let creation = events
        .iter()
        .find(|e| e.kind == EventKind::Creation)
        .expect("a creation event");
    assert_eq!(creation.object_type, Some(ObjectType::Contacts));
    assert_eq!(creation.object_id.map(|i| i.get()), Some(id));
    assert_eq!(creation.portal_id, PORTAL);
    assert_eq!(creation.app_id, Some(AppId(APP)));
    assert!(
        !creation.is_from_app(AppId(APP)),
        "a UI edit is not our echo"
    );
}
