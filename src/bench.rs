//! `hubsync bench <scenario>`: the benchmark suite.
//!
//! Every scenario runs the real parts in one process (the HubSpot emulator, a SQLite store in a
//! temporary folder, the engine and the HTTP server over loopback — the wiring of
//! `hubsync demo`), prints a table and writes its figures as JSON to
//! `bench-results/<scenario>.json`. Where the rate-limit arithmetic gives a bound (the fewest
//! calls, the highest rate the budget allows), the scenario measures against it in the same
//! run and prints the ratio. Each result also records the machine (cores, memory) and the
//! load average before and after, because the figures depend on what else the machine runs.
//!
//! | scenario | what it measures |
//! |---|---|
//! | [`outbound`] | N changed contacts → HubSpot: write calls, 429s, records/s against the tier |
//! | [`import`] | initial import of N contacts: records/s against the list API bound, peak memory |
//! | [`ingest`] | the webhook receiver: events/s verified and stored, acknowledgement latency |
//! | [`soak`] | both sides editing for a fixed time: end-to-end latency, calls, echoes, convergence |
//! | [`mapping`] | records/s through the mappings; the core merge + fingerprint per record |
//! | [`capture`] | app updates captured by trigger and merged, on SQLite |
//! | [`api`] | unified API list pages from the mirror: requests/s and latency |
//! | [`emulator`] | the emulator at 1,000,000 contacts: memory and page latency |

pub mod api;
pub mod capture;
pub mod emulator;
pub mod import;
pub mod ingest;
pub mod mapping;
pub mod outbound;
pub mod report;
pub mod soak;
mod testbed;

use std::path::PathBuf;
use std::process::ExitCode;

pub use report::{Machine, Metric, Report};

/// `hubsync bench …`
#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    /// Folder the JSON results are written to.
    #[arg(long, default_value = "bench-results", global = true)]
    pub out: PathBuf,
    /// The scenario.
    #[command(subcommand)]
    pub scenario: Scenario,
}

/// The benchmark scenarios.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum Scenario {
    /// Changed contacts pushed to HubSpot by the outbound worker at the public-app tier.
    Outbound(outbound::OutboundOptions),
    /// Initial import of a portal's contacts.
    Import(import::ImportOptions),
    /// The webhook receiver: throughput and acknowledgement latency.
    Ingest(ingest::IngestOptions),
    /// Both sides editing at a steady rate with the full runner and server.
    Soak(soak::SoakOptions),
    /// Records through the mappings, and the core merge + fingerprint per record.
    Mapping(mapping::MappingOptions),
    /// App updates captured by trigger and merged, on SQLite.
    Capture(capture::CaptureOptions),
    /// Unified API list pages from the mirror.
    Api(api::ApiOptions),
    /// The emulator at scale: memory and page latency.
    Emulator(emulator::EmulatorOptions),
    /// Every scenario above with its defaults, one after the other, each in its own process
    /// (about 12 minutes).
    All,
}

/// Runs the chosen scenario. Exit code 1 when it missed a target.
pub async fn run(args: BenchArgs) -> anyhow::Result<ExitCode> {
    let report = match args.scenario {
        Scenario::All => return run_all(&args.out).await,
        one => run_one(one).await?,
    };
    report.print();
    let path = report.write(&args.out)?;
    println!("wrote {}", path.display());
    Ok(if report.passed() == Some(false) {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// What `hubsync bench all` runs: every scenario with its defaults, the outbound one three
/// times (10,000 and 100,000 contacts alone; 20,000 with a competing app holding half).
pub const ALL: [&[&str]; 10] = [
    &["mapping"],
    &["capture"],
    &["ingest"],
    &["outbound", "--records", "10000"],
    &["outbound", "--records", "100000"],
    &["outbound", "--records", "20000", "--competing", "0.5"],
    &["import", "--records", "100000"],
    &["soak"],
    &["api"],
    &["emulator"],
];

/// Runs every scenario of [`ALL`], each in its own `hubsync bench` process (so one's memory
/// peak or failure does not colour the next), and prints a summary.
async fn run_all(out: &std::path::Path) -> anyhow::Result<ExitCode> {
    let exe = std::env::current_exe()?;
    let mut summary = Vec::new();
    for scenario in ALL {
        println!("\n=== hubsync bench {} ===", scenario.join(" "));
        let status = tokio::process::Command::new(&exe)
            .arg("bench")
            .arg("--out")
            .arg(out)
            .args(scenario)
            .status()
            .await?;
        let verdict = match status.code() {
            Some(0) => "PASS (or no targets)",
            Some(1) => "FAIL: missed a target",
            _ => "ERROR: did not run to the end",
        };
        summary.push((scenario.join(" "), verdict, status.success()));
    }
    println!("\n=== summary (results in {}) ===", out.display());
    for (scenario, verdict, _) in &summary {
        println!("{scenario:<44} {verdict}");
    }
    let ok = summary.iter().all(|(_, _, ok)| *ok);
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

async fn run_one(scenario: Scenario) -> anyhow::Result<Report> {
    match scenario {
        Scenario::Outbound(o) => outbound::run(o).await,
        Scenario::Import(o) => import::run(o).await,
        Scenario::Ingest(o) => ingest::run(o).await,
        Scenario::Soak(o) => soak::run(o).await,
        Scenario::Mapping(o) => mapping::run(o).await,
        Scenario::Capture(o) => capture::run(o).await,
        Scenario::Api(o) => api::run(o).await,
        Scenario::Emulator(o) => emulator::run(o).await,
        Scenario::All => anyhow::bail!("`all` is not a single scenario"),
    }
}
