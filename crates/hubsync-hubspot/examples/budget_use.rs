//! Measures how much of a portal's burst budget the client uses against the emulator, alone
//! and with a competing app holding half of the budget (the targets: at least 95% of the
//! tier's bound alone; at least 90% of the rest with at most 1% 429s when shared).
//!
//! `cargo run -p hubsync-hubspot --example budget_use [window_ms] [seconds]`
//!
//! The emulator's window is shortened (default 2 s instead of 10 s) to keep the run short; the
//! share of the bound used does not depend on the window length.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hubsync_core::{ObjectType, PortalId};
use hubsync_emulator::{Emulator, EmulatorConfig, Faults, PortalConfig, Settings, Tier};
use hubsync_hubspot::model::ListParams;
use hubsync_hubspot::{ClientConfig, HubspotClient, PortalCredentials, Priority};
use secrecy::SecretString;

const PORTAL: u64 = 62515;
const TOKEN: &str = "pat-na1-bench";
const BURST: u32 = 110;
const WORKERS: usize = 8;

struct Run {
    sent: u64,
    rate_limited: u64,
    bound: f64,
}

async fn run(window: Duration, measure: Duration, competing_pct: f64) -> Run {
    let mut portal = PortalConfig::new(PORTAL, 1);
    portal.tier = Tier::Custom {
        burst: BURST,
        daily: u64::MAX / 2,
    };
    portal.private_app_token = Some(TOKEN.into());
    let config = EmulatorConfig {
        portals: vec![portal],
        settings: Settings {
            burst_window_ms: u64::try_from(window.as_millis()).unwrap_or(10_000),
            ..Settings::default()
        },
        faults: Faults {
            competing_app_share_pct: competing_pct,
            ..Faults::default()
        },
        ..EmulatorConfig::default()
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let emu = Emulator::start(config, listener).await.expect("emulator");
    let mut client_config = ClientConfig::with_base_url(emu.base_url());
    client_config.limits.general_max = BURST;
    client_config.limits.general_window = window;
    let client = HubspotClient::new(client_config).expect("client");
    let portal = client
        .portal(
            PortalId(PORTAL),
            PortalCredentials::PrivateApp(SecretString::from(TOKEN)),
        )
        .with_priority(Priority::Outbound);

    let counting = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let counted = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..WORKERS {
        let (portal, counting, stop, counted) = (
            portal.clone(),
            counting.clone(),
            stop.clone(),
            counted.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let params = ListParams {
                limit: Some(1),
                ..ListParams::default()
            };
            while !stop.load(Ordering::Relaxed) {
                if portal
                    .list_page(ObjectType::Contacts, &params)
                    .await
                    .is_ok()
                    && counting.load(Ordering::Relaxed)
                {
                    counted.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    // One window of warm-up (the first window may be spent in a burst), then measure.
    tokio::time::sleep(window).await;
    let before = portal.stats();
    counting.store(true, Ordering::Relaxed);
    let started = Instant::now();
    tokio::time::sleep(measure).await;
    counting.store(false, Ordering::Relaxed);
    let elapsed = started.elapsed();
    let after = portal.stats();
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        let _ = t.await;
    }
    emu.shutdown().await;
    let ours = f64::from(BURST) * (1.0 - competing_pct / 100.0);
    Run {
        sent: counted.load(Ordering::Relaxed),
        rate_limited: after.rate_limited - before.rate_limited,
        bound: ours * elapsed.as_secs_f64() / window.as_secs_f64(),
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let mut args = std::env::args().skip(1);
    let window = Duration::from_millis(args.next().and_then(|a| a.parse().ok()).unwrap_or(2_000));
    let measure = Duration::from_secs(args.next().and_then(|a| a.parse().ok()).unwrap_or(6));
    for (label, competing) in [("alone", 0.0), ("competing app holds 50%", 50.0)] {
        let r = run(window, measure, competing).await;
        println!(
            "{label:>24}: {} successful calls in {:.1} windows; bound {:.0} -> {:.1}% of the bound; {} answered 429 ({:.2}%)",
            r.sent,
            measure.as_secs_f64() / window.as_secs_f64(),
            r.bound,
            100.0 * r.sent as f64 / r.bound,
            r.rate_limited,
            100.0 * r.rate_limited as f64 / (r.sent.max(1)) as f64,
        );
    }
}
