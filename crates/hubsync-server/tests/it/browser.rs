//! The status page in a real browser: headless Chromium loads `/` from a running server and
//! the rendered DOM must show the portal and its queue depths. Skipped (with a notice) where
//! Chromium is not installed, except in CI (`CI=true`), where a missing browser fails.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use crate::common::{self, PORTAL_NAME};
use crate::status::seed;

const CHROMIUM: &str = "/usr/bin/chromium";

#[tokio::test]
async fn headless_chromium_renders_the_portal_and_its_queue_depths() {
    if !Path::new(CHROMIUM).exists() {
        let in_ci = std::env::var("CI").is_ok_and(|v| v == "true");
        assert!(
            !in_ci,
            "{CHROMIUM} is missing; CI must install the `chromium` package"
        );
        eprintln!("SKIPPED: {CHROMIUM} not installed (apt-get install chromium)");
        return;
    }
    let server = common::start().await;
    seed(&server).await;
    let profile = tempfile::tempdir().expect("profile dir");
    let output = tokio::time::timeout(
        Duration::from_secs(60),
        tokio::process::Command::new(CHROMIUM)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--virtual-time-budget=3000",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("--dump-dom")
            .arg(server.url("/"))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("chromium finishes")
    .expect("chromium runs");
    let dom = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && dom.contains("</html>"),
        "chromium failed: {}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(dom.contains(PORTAL_NAME), "portal name missing from\n{dom}");
    for (field, value) in [
        ("queues.outbox", "2"),
        ("queues.inbox", "3"),
        ("queues.dead_letters", "1"),
        ("echoes.origin", "5"),
    ] {
        let cell = format!("data-f=\"{field}\">{value}<");
        assert!(dom.contains(&cell), "missing {cell} in\n{dom}");
    }
    // The live chart was drawn (one bar per sample, by the server and then by the script).
    assert!(dom.contains("<rect"), "no chart bars in\n{dom}");
    // The script ran and refreshed the page from status.json without marking it stale.
    assert!(
        !dom.contains("class=\"stale\""),
        "the page could not refresh:\n{dom}"
    );
    server.stop().await;
}
