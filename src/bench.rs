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
    /// Every scenario above with its default figures, one after the other (about 10 minutes).
    All,
}

/// Runs the chosen scenario(s). Exit code 1 when a scenario missed a target.
pub async fn run(args: BenchArgs) -> anyhow::Result<ExitCode> {
    let plan = match args.scenario {
        Scenario::All => all(),
        one => vec![one],
    };
    let several = plan.len() > 1;
    let mut summary = Vec::new();
    for scenario in plan {
        let name = scenario.name();
        if several {
            println!("\n=== hubsync bench {name} ===");
        }
        match run_one(scenario).await {
            Ok(report) => {
                report.print();
                let path = report.write(&args.out)?;
                println!("wrote {}", path.display());
                summary.push((report.scenario.clone(), report.passed(), None));
            }
            // A lone scenario's failure is the command's error; in `all` the rest still run.
            Err(error) if !several => return Err(error),
            Err(error) => {
                eprintln!("bench {name} failed to run: {error:#}");
                summary.push((name.to_owned(), Some(false), Some(format!("{error:#}"))));
            }
        }
    }
    if several {
        println!("\n=== summary ===");
        for (scenario, passed, error) in &summary {
            let verdict = report::verdict(*passed);
            match error {
                Some(e) => println!("{scenario:<32} {verdict}  ({e})"),
                None => println!("{scenario:<32} {verdict}"),
            }
        }
    }
    let ok = summary.iter().all(|(_, passed, _)| *passed != Some(false));
    Ok(if ok { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

impl Scenario {
    fn name(&self) -> &'static str {
        match self {
            Scenario::Outbound(_) => "outbound",
            Scenario::Import(_) => "import",
            Scenario::Ingest(_) => "ingest",
            Scenario::Soak(_) => "soak",
            Scenario::Mapping(_) => "mapping",
            Scenario::Capture(_) => "capture",
            Scenario::Api(_) => "api",
            Scenario::Emulator(_) => "emulator",
            Scenario::All => "all",
        }
    }
}

/// What `hubsync bench all` runs: every scenario with its defaults, the outbound one three
/// times (10,000 and 100,000 contacts alone; 20,000 with a competing app holding half).
fn all() -> Vec<Scenario> {
    vec![
        Scenario::Mapping(mapping::MappingOptions::default()),
        Scenario::Capture(capture::CaptureOptions::default()),
        Scenario::Ingest(ingest::IngestOptions::default()),
        Scenario::Outbound(outbound::OutboundOptions { records: 10_000, competing: 0.0 }),
        Scenario::Outbound(outbound::OutboundOptions { records: 100_000, competing: 0.0 }),
        Scenario::Outbound(outbound::OutboundOptions { records: 20_000, competing: 0.5 }),
        Scenario::Import(import::ImportOptions::default()),
        Scenario::Soak(soak::SoakOptions::default()),
        Scenario::Api(api::ApiOptions::default()),
        Scenario::Emulator(emulator::EmulatorOptions::default()),
    ]
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
