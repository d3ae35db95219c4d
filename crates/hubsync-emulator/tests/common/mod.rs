//! Shared helpers for the emulator's integration tests: start an emulator on loopback and a
//! webhook receiver that records raw deliveries.
#![allow(dead_code, missing_docs, clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use hubsync_emulator::{Emulator, EmulatorConfig, EmulatorHandle, OAuthClient, PortalConfig};
use parking_lot::Mutex;
use serde_json::Value;

pub const PORTAL: u64 = 62515;
pub const APP: u64 = 54321;
pub const TOKEN: &str = "pat-na1-11111111-2222-3333-4444-555555555555";
pub const SECRET: &str = "yyyyyyyy-yyyy-yyyy-yyyy-yyyyyyyyyyyy";

pub fn portal() -> PortalConfig {
    let mut p = PortalConfig::new(PORTAL, APP);
    p.private_app_token = Some(TOKEN.into());
    p.webhook_secret = SECRET.into();
    p.oauth = Some(OAuthClient {
        client_id: "client-1".into(),
        client_secret: "client-secret-1".into(),
        redirect_uri: Some("http://localhost/callback".into()),
        scopes: vec!["crm.objects.contacts.read".into()],
    });
    p
}

pub async fn start_with(config: EmulatorConfig) -> EmulatorHandle {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    Emulator::start(config, listener).await.unwrap()
}

pub async fn start() -> EmulatorHandle {
    start_with(EmulatorConfig {
        portals: vec![portal()],
        ..EmulatorConfig::default()
    })
    .await
}

pub struct Client {
    pub http: reqwest::Client,
    pub base: String,
    pub token: String,
}

pub struct Resp {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    }
}

impl Client {
    pub fn new(emu: &EmulatorHandle) -> Self {
        Self {
            http: reqwest::Client::new(),
            base: emu.base_url(),
            token: TOKEN.into(),
        }
    }

    pub async fn call(&self, method: &str, path: &str, body: Option<Value>) -> Resp {
        let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut rb = self
            .http
            .request(m, format!("{}{}", self.base, path))
            .bearer_auth(&self.token);
        if let Some(b) = body {
            rb = rb.json(&b);
        }
        let r = rb.send().await.unwrap();
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        let text = r.text().await.unwrap();
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        Resp {
            status,
            headers,
            body,
        }
    }

    pub async fn get(&self, path: &str) -> Resp {
        self.call("GET", path, None).await
    }
    pub async fn post(&self, path: &str, body: Value) -> Resp {
        self.call("POST", path, Some(body)).await
    }
    pub async fn patch(&self, path: &str, body: Value) -> Resp {
        self.call("PATCH", path, Some(body)).await
    }
    pub async fn delete(&self, path: &str) -> Resp {
        self.call("DELETE", path, None).await
    }
}

#[derive(Debug, Clone)]
pub struct Delivery {
    pub headers: HeaderMap,
    pub body: Bytes,
    pub events: Vec<Value>,
}

#[derive(Clone, Default)]
pub struct Receiver {
    pub deliveries: Arc<Mutex<Vec<Delivery>>>,
    /// Status codes to answer, in order; 200 when exhausted. 0 means: answer 200 after 400 ms.
    pub script: Arc<Mutex<Vec<u16>>>,
    /// Milliseconds to wait before answering every request.
    pub delay_ms: Arc<AtomicU64>,
    pub in_flight: Arc<AtomicUsize>,
    pub max_in_flight: Arc<AtomicUsize>,
}

impl Receiver {
    pub fn events(&self) -> Vec<Value> {
        self.deliveries
            .lock()
            .iter()
            .flat_map(|d| d.events.clone())
            .collect()
    }
}

async fn receive(State(r): State<Receiver>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let now = r.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    r.max_in_flight.fetch_max(now, Ordering::SeqCst);
    let events: Vec<Value> = serde_json::from_slice(&body).unwrap_or_default();
    r.deliveries.lock().push(Delivery {
        headers,
        body,
        events,
    });
    let next = {
        let mut s = r.script.lock();
        if s.is_empty() { 200 } else { s.remove(0) }
    };
    let delay = r.delay_ms.load(Ordering::SeqCst);
    if delay > 0 {
        tokio::time::sleep(std::time::Duration::from_millis(delay)).await;
    }
    if next == 0 {
        tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    }
    r.in_flight.fetch_sub(1, Ordering::SeqCst);
    StatusCode::from_u16(if next == 0 { 200 } else { next }).unwrap()
}

/// Starts a webhook receiver; returns its URL and the recorder.
pub async fn receiver() -> (String, Receiver) {
    let r = Receiver::default();
    let app = axum::Router::new()
        .route("/hook", post(receive))
        .with_state(r.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    (url, r)
}

/// Waits until `f` holds or two seconds pass.
pub async fn eventually(mut f: impl FnMut() -> bool) -> bool {
    for _ in 0..200 {
        if f() {
            return true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    f()
}
