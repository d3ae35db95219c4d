//! The `hubsync` binary's subcommands, run as a user would, against a real SQLite store and the
//! emulator.

#![allow(clippy::unwrap_used)]

mod common;

use std::process::Output;

use common::{APP, PORTAL, TOKEN};
use hubsync_emulator::{Emulator, EmulatorConfig, PortalConfig, SeedSpec};

struct Cli {
    dir: tempfile::TempDir,
    base_url: String,
}

impl Cli {
    fn new(base_url: &str) -> Cli {
        Cli {
            dir: tempfile::tempdir().unwrap(),
            base_url: base_url.to_owned(),
        }
    }

    fn run(&self, args: &[&str]) -> Output {
        std::process::Command::new(env!("CARGO_BIN_EXE_hubsync"))
            .args(args)
            .current_dir(self.dir.path())
            .env(
                "HUBSYNC_DATABASE_URL",
                format!(
                    "sqlite://{}?mode=rwc",
                    self.dir.path().join("h.db").display()
                ),
            )
            .env("HUBSYNC_HUBSPOT__BASE_URL", &self.base_url)
            .env("HUBSYNC_HUBSPOT__APP_ID", APP.to_string())
            .env("RUST_LOG", "warn")
            .output()
            .expect("run hubsync")
    }
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

async fn emulator() -> hubsync_emulator::EmulatorHandle {
    let mut p = PortalConfig::new(PORTAL, APP);
    p.private_app_token = Some(TOKEN.to_owned());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    Emulator::start(
        EmulatorConfig {
            portals: vec![p],
            ..EmulatorConfig::default()
        },
        listener,
    )
    .await
    .unwrap()
}

#[tokio::test]
async fn portal_lifecycle_status_dlq_and_conflicts_work_against_a_real_store() {
    let cli = Cli::new("http://127.0.0.1:9");
    let out = cli.run(&["migrate"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = cli.run(&[
        "portal",
        "add",
        &PORTAL.to_string(),
        "--name",
        "Acme",
        "--token",
        TOKEN,
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = cli.run(&["portal", "list"]);
    assert!(stdout(&out).contains("Acme"));
    let out = cli.run(&["status", "--json"]);
    assert!(out.status.success());
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(status[0]["portal"], PORTAL);
    assert_eq!(status[0]["outbox"], 0);
    // The token never shows in any output.
    assert!(!stdout(&out).contains(TOKEN));
    let out = cli.run(&["dlq", "list", "--portal", &PORTAL.to_string()]);
    assert!(out.status.success());
    let out = cli.run(&["dlq", "retry", "--portal", &PORTAL.to_string(), "999"]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "retrying an unknown dead letter is a usage error"
    );
    let out = cli.run(&["conflicts", "list", "--portal", &PORTAL.to_string()]);
    assert!(out.status.success());
    let out = cli.run(&["portal", "remove", &PORTAL.to_string()]);
    assert!(out.status.success());
    assert!(!stdout(&cli.run(&["portal", "list"])).contains("Acme"));
}

// The binary is a blocking child process; the emulator needs its own worker thread meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconcile_dry_run_reports_drift_with_exit_code_1_and_changes_nothing() {
    let emulator = emulator().await;
    emulator
        .admin()
        .seed(
            PORTAL,
            &SeedSpec {
                contacts: 30,
                duplicate_share: 0.0,
                ..SeedSpec::default()
            },
        )
        .unwrap();
    let cli = Cli::new(&emulator.base_url());
    assert!(
        cli.run(&["portal", "add", &PORTAL.to_string(), "--token", TOKEN])
            .status
            .success()
    );
    let out = cli.run(&[
        "reconcile",
        "--portal",
        &PORTAL.to_string(),
        "--full",
        "--dry-run",
    ]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    assert!(stdout(&out).contains("repaired local"));
    let status: serde_json::Value =
        serde_json::from_slice(&cli.run(&["status", "--json"]).stdout).unwrap();
    assert_eq!(
        status[0]["counters"].as_object().map(|c| c.len()),
        Some(0),
        "a dry run writes nothing"
    );
    // A real pass repairs it; a second dry run finds nothing.
    assert!(
        cli.run(&["reconcile", "--portal", &PORTAL.to_string(), "--full"])
            .status
            .success()
    );
    let out = cli.run(&[
        "reconcile",
        "--portal",
        &PORTAL.to_string(),
        "--full",
        "--dry-run",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
}

#[tokio::test]
async fn mappings_check_and_test_map_a_record() {
    let cli = Cli::new("http://127.0.0.1:9");
    let out = cli.run(&["mappings", "check"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let input = cli.dir.path().join("contact.json");
    std::fs::write(&input, r#"{"id":"1","properties":{"firstname":"Ada","email":"ada@example.com","hs_additional_emails":"a2@example.com","arr__c":"5"}}"#).unwrap();
    let out = cli.run(&[
        "mappings",
        "test",
        "contacts",
        "to-unified",
        input.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let unified: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(unified["first_name"], "Ada");
    assert_eq!(
        unified["email_addresses"],
        serde_json::json!(["ada@example.com", "a2@example.com"])
    );
    assert_eq!(unified["custom_fields"]["arr__c"], "5");
}

#[tokio::test]
async fn a_bad_setting_is_named_and_exits_with_2() {
    let cli = Cli::new("http://127.0.0.1:9");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_hubsync"))
        .args(["status"])
        .current_dir(cli.dir.path())
        .env("HUBSYNC_OUTBOUND__BATCH_SIZE", "500")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("outbound.batch_size"),
        "{}",
        stderr(&out)
    );
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_hubsync"))
        .args(["--config", "/nonexistent/hubsync.toml", "status"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("/nonexistent/hubsync.toml"));
}

#[test]
fn every_subcommand_has_help_that_reads_like_documentation() {
    for cmd in [
        &["serve"][..],
        &["demo"],
        &["sim"],
        &["reconcile"],
        &["status"],
        &["dlq", "list"],
        &["conflicts", "list"],
        &["portal", "add"],
        &["portal", "auth"],
        &["mappings", "test"],
        &["migrate"],
    ] {
        let mut args: Vec<&str> = cmd.to_vec();
        args.push("--help");
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_hubsync"))
            .args(&args)
            .output()
            .unwrap();
        assert!(out.status.success(), "{cmd:?}");
        assert!(
            String::from_utf8_lossy(&out.stdout).lines().count() > 4,
            "{cmd:?} help is too thin"
        );
    }
}
