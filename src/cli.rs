//! The command-line interface: one `hubsync` binary with a subcommand per job.
//!
//! Exit codes: 0 success; 1 the job ran and found a problem (a failed final check, a dry run
//! with drift); 2 bad usage or configuration; 3 a required service (database, HubSpot) is
//! unreachable.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use hubsync_core::PortalId;
use hubsync_store::Store;

use crate::config::Config;

/// Two-way sync between your application's database and HubSpot CRM.
///
/// hubsync keeps plain tables (contacts, companies, deals) in its database in sync with one or
/// more HubSpot portals: app writes are captured by triggers and pushed in batches; HubSpot
/// changes arrive as signed webhooks and through scheduled reconciliation.
#[derive(Debug, Parser)]
#[command(name = "hubsync", version, propagate_version = true)]
pub struct Cli {
    /// Configuration file (TOML). Defaults to ./hubsync.toml when present, else built-in defaults.
    #[arg(long, global = true, env = "HUBSYNC_CONFIG")]
    pub config: Option<PathBuf>,
    /// Log as JSON lines instead of human-readable text.
    #[arg(long, global = true)]
    pub log_json: bool,
    /// The command to run.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the whole product on embedded defaults: an in-process HubSpot emulator, a SQLite
    /// store in a temporary folder, a seeded portal and app, two-way edits with webhook faults,
    /// and a final report with a convergence check. Needs no set-up and no network.
    Demo(crate::demo::DemoOptions),
    /// Run hubsync: the webhook receiver, the unified API, the status page and the sync
    /// workers of every connected portal, until SIGTERM or Ctrl-C.
    ///
    /// On shutdown it stops taking work, lets in-flight requests and worker steps finish, and
    /// exits; anything claimed but unfinished returns to its queue.
    Serve,
    /// Apply the database migrations and exit.
    ///
    /// Migrations also run whenever hubsync opens its database; this command lets you upgrade
    /// ahead of a deploy. An older schema is upgraded in place, never wiped.
    Migrate,
    /// Show each portal's sync status, queue depths and counters.
    Status {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Inspect and act on the dead-letter queue: items HubSpot or the mapping rejected.
    #[command(subcommand)]
    Dlq(DlqCommand),
    /// Inspect recorded conflicts (fields both sides changed) and how each was settled.
    #[command(subcommand)]
    Conflicts(ConflictsCommand),
    /// Add, list, remove and authorize HubSpot portals.
    #[command(subcommand)]
    Portal(PortalCommand),
    /// Check the JSONata mappings, or run one through a record.
    #[command(subcommand)]
    Mappings(MappingsCommand),
    /// Run the local HubSpot emulator standalone: a HubSpot CRM API to develop against, with
    /// webhooks, rate limits and fault injection (see the emulator's admin API in the README).
    Sim(SimArgs),
    /// Run a benchmark scenario (or `all`): prints a table of figures against the rate-limit
    /// arithmetic's bounds and the targets, and writes them as JSON to bench-results/.
    Bench(crate::bench::BenchArgs),
    /// Compare both sides now and repair what differs.
    ///
    /// Without --full, runs one incremental pass (records modified since the last pass). With
    /// --full, compares every record, finds deletes that no webhook reported, and re-queues local
    /// changes that never reached HubSpot. --dry-run reports without changing anything and exits
    /// with 1 when it found differences.
    Reconcile {
        /// The portal.
        #[command(flatten)]
        portal: PortalArg,
        /// Compare every record instead of the recently modified ones.
        #[arg(long)]
        full: bool,
        /// Report only; change nothing.
        #[arg(long, requires = "full")]
        dry_run: bool,
    },
}

/// `hubsync mappings …`
#[derive(Debug, Subcommand)]
pub enum MappingsCommand {
    /// Compile every mapping and report the first error with its file, line and expression.
    Check,
    /// Map one record read from a JSON file (or - for stdin) and print the result.
    Test {
        /// contacts, companies or deals.
        object_type: hubsync_core::ObjectType,
        /// `to-unified` (input: a HubSpot object) or `to-hubspot` (input: a unified record).
        #[arg(value_parser = ["to-unified", "to-hubspot"])]
        direction: String,
        /// The input file.
        file: PathBuf,
    },
}

/// `hubsync sim`
#[derive(Debug, Args)]
pub struct SimArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:4010")]
    pub listen: String,
    /// Portal id to create.
    #[arg(long, default_value_t = 62515)]
    pub portal: u64,
    /// App id of the installed app.
    #[arg(long, default_value_t = 54321)]
    pub app: u64,
    /// The private-app token the portal accepts.
    #[arg(long, default_value = "pat-na1-hubsync-sim")]
    pub token: String,
    /// Where to deliver webhooks (e.g. http://127.0.0.1:8080/webhooks/hubspot).
    #[arg(long)]
    pub webhook_target: Option<String>,
    /// The secret webhooks are signed with.
    #[arg(long, default_value = "sim-webhook-secret")]
    pub webhook_secret: String,
    /// Contacts to seed.
    #[arg(long, default_value_t = 0)]
    pub seed_contacts: usize,
    /// Companies to seed.
    #[arg(long, default_value_t = 0)]
    pub seed_companies: usize,
    /// Seed for every fault sequence.
    #[arg(long, default_value_t = 0x5eed)]
    pub seed: u64,
}

/// `hubsync dlq …`
#[derive(Debug, Subcommand)]
pub enum DlqCommand {
    /// List a portal's dead letters, newest first.
    List(PortalArg),
    /// Show one dead letter in full.
    Show {
        /// The portal.
        #[command(flatten)]
        portal: PortalArg,
        /// The dead letter's id.
        id: i64,
    },
    /// Put a dead letter back on its queue for another attempt.
    Retry {
        /// The portal.
        #[command(flatten)]
        portal: PortalArg,
        /// The dead letter's id.
        id: i64,
    },
    /// Delete a dead letter for good.
    Drop {
        /// The portal.
        #[command(flatten)]
        portal: PortalArg,
        /// The dead letter's id.
        id: i64,
    },
}

/// `hubsync conflicts …`
#[derive(Debug, Subcommand)]
pub enum ConflictsCommand {
    /// List a portal's conflicts, newest first.
    List {
        /// The portal.
        #[command(flatten)]
        portal: PortalArg,
        /// How many to show.
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
}

/// `hubsync portal …`
#[derive(Debug, Subcommand)]
pub enum PortalCommand {
    /// Connect a portal with a private-app access token.
    Add {
        /// HubSpot's portal (account) id.
        portal_id: u64,
        /// A display name.
        #[arg(long, default_value = "")]
        name: String,
        /// The private-app token (prefer the environment variable).
        #[arg(long, env = "HUBSYNC_PORTAL_TOKEN", hide_env_values = true)]
        token: String,
    },
    /// Connect (or re-authorise) a portal through HubSpot's OAuth install flow.
    ///
    /// Without --code, prints the URL to open in a browser; HubSpot then redirects to
    /// --redirect-uri with `?code=…`. Run again with that code to exchange it for tokens, which
    /// are stored (and refreshed automatically from then on). A portal parked as needing
    /// re-authorisation becomes active again.
    Auth {
        /// The authorization code from HubSpot's redirect.
        #[arg(long)]
        code: Option<String>,
        /// The redirect URI registered for the app.
        #[arg(long, default_value = "http://localhost:8080/oauth/callback")]
        redirect_uri: String,
        /// Space-separated scopes to request.
        #[arg(
            long,
            default_value = "crm.objects.contacts.read crm.objects.contacts.write crm.objects.companies.read crm.objects.companies.write crm.objects.deals.read crm.objects.deals.write crm.schemas.contacts.write"
        )]
        scopes: String,
    },
    /// List connected portals and their status.
    List,
    /// Disconnect a portal and delete everything hubsync stored for it.
    Remove {
        /// The portal id.
        portal_id: u64,
    },
}

/// Selects a portal.
#[derive(Debug, Args)]
pub struct PortalArg {
    /// The portal id.
    #[arg(long)]
    pub portal: u64,
}

/// Parses arguments, runs the command and maps errors to exit codes.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let default_level = if matches!(cli.command, Command::Demo(_) | Command::Bench(_)) {
        "error"
    } else {
        "info"
    };
    crate::telemetry::init(cli.log_json, default_level);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::from(3);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::from(exit_code_for(&error))
        }
    }
}

fn exit_code_for(error: &anyhow::Error) -> u8 {
    let unreachable = error.chain().any(|e| {
        e.downcast_ref::<hubsync_store::StoreError>().is_some()
            || matches!(
                e.downcast_ref::<hubsync_hubspot::ApiError>(),
                Some(
                    hubsync_hubspot::ApiError::Transport { .. }
                        | hubsync_hubspot::ApiError::CircuitOpen { .. }
                )
            )
    });
    if unreachable { 3 } else { 2 }
}

/// Runs one parsed command.
pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    if let Command::Demo(options) = cli.command {
        crate::demo::run(options).await?;
        return Ok(ExitCode::SUCCESS);
    }
    let config = Config::load(cli.config.as_deref())?;
    match cli.command {
        Command::Demo(_) => {}
        Command::Serve => serve(&config).await?,
        Command::Migrate => {
            let store = open_store(&config).await?;
            println!(
                "database at {} is migrated ({})",
                redact_url(&config.database_url),
                store.backend()
            );
            store.close().await;
        }
        Command::Status { json } => status(&config, json).await?,
        Command::Dlq(cmd) => dlq(&config, cmd).await?,
        Command::Conflicts(ConflictsCommand::List { portal, limit }) => {
            let store = open_store(&config).await?;
            for c in store
                .list_conflicts(PortalId(portal.portal), None, limit)
                .await?
            {
                println!(
                    "#{} {} local={:?} hubspot={:?} field={} local={} remote={} policy={:?} winner={:?}",
                    c.id,
                    c.object_type,
                    c.local_id.map(|i| i.0),
                    c.hubspot_id.map(|i| i.0),
                    c.conflict.field,
                    c.conflict.local,
                    c.conflict.remote,
                    c.conflict.policy,
                    c.conflict.winner
                );
            }
        }
        Command::Portal(cmd) => portal(&config, cmd).await?,
        Command::Mappings(cmd) => mappings(&config, cmd).await?,
        Command::Sim(args) => sim(args).await?,
        Command::Bench(args) => return crate::bench::run(args).await,
        Command::Reconcile {
            portal,
            full,
            dry_run,
        } => return reconcile(&config, PortalId(portal.portal), full, dry_run).await,
    }
    Ok(ExitCode::SUCCESS)
}

/// Opens (and migrates) the configured database.
pub async fn open_store(config: &Config) -> anyhow::Result<Arc<dyn Store>> {
    hubsync_store::connect_with(&config.database_url, config.database.pg_options())
        .await
        .with_context(|| {
            format!(
                "cannot open the database at {}",
                redact_url(&config.database_url)
            )
        })
}

/// A database URL without its password.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let userinfo = &url[scheme_end + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme_end + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

async fn status(config: &Config, json: bool) -> anyhow::Result<()> {
    let store = open_store(config).await?;
    let mut rows = Vec::new();
    for portal in store.list_portals().await? {
        let depths = store.queue_depths(portal.portal_id).await?;
        let counters = store.counters(portal.portal_id).await?;
        rows.push(serde_json::json!({
            "portal": portal.portal_id,
            "name": portal.name,
            "status": portal.status.as_str(),
            "reason": portal.status_reason,
            "outbox": depths.outbox,
            "inbox": depths.inbox,
            "dead_letters": depths.dead_letters,
            "conflicts": depths.conflicts,
            "counters": counters,
        }));
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
    } else if rows.is_empty() {
        println!("no portals connected (add one with `hubsync portal add`)");
    } else {
        println!(
            "{:<12} {:<14} {:>8} {:>8} {:>6} {:>9}",
            "portal", "status", "outbox", "inbox", "dlq", "conflicts"
        );
        for r in &rows {
            println!(
                "{:<12} {:<14} {:>8} {:>8} {:>6} {:>9}",
                r["portal"],
                r["status"].as_str().unwrap_or(""),
                r["outbox"],
                r["inbox"],
                r["dead_letters"],
                r["conflicts"]
            );
        }
    }
    store.close().await;
    Ok(())
}

async fn dlq(config: &Config, cmd: DlqCommand) -> anyhow::Result<()> {
    let store = open_store(config).await?;
    match cmd {
        DlqCommand::List(p) => {
            for d in store
                .list_dead_letters(PortalId(p.portal), None, 100)
                .await?
            {
                println!(
                    "#{} {:?} {} local={:?} hubspot={:?} attempts={} {}: {}",
                    d.id,
                    d.letter.source,
                    d.letter.object_type.map(|t| t.plural()).unwrap_or("-"),
                    d.letter.local_id.map(|i| i.0),
                    d.letter.hubspot_id.map(|i| i.0),
                    d.letter.attempts,
                    d.letter.category,
                    d.letter.reason
                );
            }
        }
        DlqCommand::Show { portal, id } => {
            match store.get_dead_letter(PortalId(portal.portal), id).await? {
                Some(d) => println!("{d:#?}"),
                None => anyhow::bail!("no dead letter #{id} in portal {}", portal.portal),
            }
        }
        DlqCommand::Retry { portal, id } => {
            if !store.retry_dead_letter(PortalId(portal.portal), id).await? {
                anyhow::bail!("no dead letter #{id} in portal {} to retry", portal.portal);
            }
            println!("dead letter #{id} re-queued");
        }
        DlqCommand::Drop { portal, id } => {
            if !store.drop_dead_letter(PortalId(portal.portal), id).await? {
                anyhow::bail!("no dead letter #{id} in portal {}", portal.portal);
            }
            println!("dead letter #{id} dropped");
        }
    }
    store.close().await;
    Ok(())
}

async fn portal(config: &Config, cmd: PortalCommand) -> anyhow::Result<()> {
    let store = open_store(config).await?;
    match cmd {
        PortalCommand::Add {
            portal_id,
            name,
            token,
        } => {
            let portal = hubsync_store::Portal {
                portal_id: PortalId(portal_id),
                name,
                app_id: (config.hubspot.app_id > 0)
                    .then_some(hubsync_core::AppId(config.hubspot.app_id)),
                auth: hubsync_store::PortalAuth(
                    serde_json::json!({"kind": "private_app", "token": token}),
                ),
                status: hubsync_store::PortalStatus::Active,
                status_reason: None,
                config: serde_json::json!({"burst_tier": config.hubspot.burst_tier}),
                created_at: 0,
            };
            store.upsert_portal(&portal).await?;
            store
                .set_portal_status(
                    PortalId(portal_id),
                    hubsync_store::PortalStatus::Active,
                    None,
                )
                .await?;
            println!("portal {portal_id} added");
        }
        PortalCommand::Auth {
            code,
            redirect_uri,
            scopes,
        } => {
            let app = crate::app::oauth_app(config)
                .context("hubspot.client_id and hubspot.client_secret must be set for OAuth")?;
            let Some(code) = code else {
                let encode = |s: &str| {
                    s.replace(' ', "%20")
                        .replace(':', "%3A")
                        .replace('/', "%2F")
                };
                println!(
                    "open https://app.hubspot.com/oauth/authorize?client_id={}&redirect_uri={}&scope={}\nthen run again with --code <the code HubSpot redirects with>",
                    app.client_id,
                    encode(&redirect_uri),
                    encode(&scopes)
                );
                return Ok(());
            };
            let engine = crate::app::engine(config, Arc::clone(&store))?;
            let grant = engine
                .hubspot
                .exchange_code(&app, &secrecy::SecretString::from(code), &redirect_uri)
                .await
                .context("HubSpot refused the authorization code")?;
            let portal_id = grant
                .hub_id
                .context("HubSpot's token answer did not name the portal (hub_id)")?;
            let existing = store.get_portal(portal_id).await?;
            let portal = hubsync_store::Portal {
                portal_id,
                name: existing
                    .as_ref()
                    .map(|p| p.name.clone())
                    .unwrap_or_default(),
                app_id: (config.hubspot.app_id > 0)
                    .then_some(hubsync_core::AppId(config.hubspot.app_id)),
                auth: hubsync_engine::setup::oauth_auth(&grant.tokens),
                status: hubsync_store::PortalStatus::Active,
                status_reason: None,
                config: existing.map(|p| p.config).unwrap_or_else(
                    || serde_json::json!({"burst_tier": config.hubspot.burst_tier}),
                ),
                created_at: 0,
            };
            store.upsert_portal(&portal).await?;
            store
                .set_portal_status(portal_id, hubsync_store::PortalStatus::Active, None)
                .await?;
            println!("portal {portal_id} authorised; `hubsync serve` picks it up within seconds");
        }
        PortalCommand::List => {
            for p in store.list_portals().await? {
                println!("{} {:<20} {}", p.portal_id, p.name, p.status.as_str());
            }
        }
        PortalCommand::Remove { portal_id } => {
            if !store.delete_portal(PortalId(portal_id)).await? {
                anyhow::bail!("no portal {portal_id}");
            }
            println!("portal {portal_id} removed");
        }
    }
    store.close().await;
    Ok(())
}

async fn serve(config: &Config) -> anyhow::Result<()> {
    let store = open_store(config).await?;
    let engine = crate::app::engine(config, Arc::clone(&store))?;
    let metrics = metrics_exporter_prometheus::PrometheusBuilder::new()
        .install_recorder()
        .context("cannot install the metrics recorder")?;
    let webhook = config.has_webhook_secret().then(|| {
        let mut w = hubsync_server::WebhookConfig::new(config.webhooks.client_secret.clone());
        w.max_age = std::time::Duration::from_secs(config.webhooks.max_age_secs);
        w.accept_legacy = config.webhooks.accept_v1;
        w
    });
    if webhook.is_none() {
        tracing::warn!(
            "webhooks.client_secret is not set: the webhook receiver is off; changes in HubSpot arrive only through reconciliation"
        );
    }
    let mut server_config =
        hubsync_server::ServerConfig::new(config.server.public_url.clone(), webhook);
    server_config.max_body_bytes = config.server.max_body_bytes;
    server_config
        .validate()
        .context("invalid [server] settings")?;
    let router = hubsync_server::router(engine.clone(), server_config, Some(metrics));
    let listener = tokio::net::TcpListener::bind(&config.server.listen)
        .await
        .with_context(|| format!("server.listen: cannot listen on {}", config.server.listen))?;

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let workers = tokio::spawn(hubsync_engine::runner::run(
        engine,
        crate::app::oauth_app(config),
        stop_rx,
    ));
    let shutdown = async move {
        hubsync_server::shutdown_signal().await;
        tracing::info!("shutting down: finishing in-flight work");
        let _ = stop_tx.send(true);
    };
    hubsync_server::run(listener, router, shutdown).await?;
    match tokio::time::timeout(std::time::Duration::from_secs(30), workers).await {
        Ok(Ok(Ok(()))) => {}
        Ok(Ok(Err(error))) => return Err(error).context("the sync workers failed"),
        Ok(Err(join)) => anyhow::bail!("the sync workers panicked: {join}"),
        Err(_) => tracing::warn!(
            "workers did not stop within 30 s; unfinished claims return to their queues when their leases expire"
        ),
    }
    store.close().await;
    Ok(())
}

async fn mappings(config: &Config, cmd: MappingsCommand) -> anyhow::Result<()> {
    let mappings = crate::app::mappings(config)?;
    match cmd {
        MappingsCommand::Check => {
            println!("mappings ok: contacts, companies and deals compile in both directions")
        }
        MappingsCommand::Test {
            object_type,
            direction,
            file,
        } => {
            let text = if file.as_os_str() == "-" {
                std::io::read_to_string(std::io::stdin())?
            } else {
                std::fs::read_to_string(&file)
                    .with_context(|| format!("cannot read {}", file.display()))?
            };
            let input: serde_json::Value =
                serde_json::from_str(&text).context("the input is not JSON")?;
            let output = if direction == "to-unified" {
                mappings.to_unified(object_type, input).await?.to_unified()
            } else {
                let fields = hubsync_core::FieldMap::from_unified(&input);
                serde_json::json!({ "properties": mappings.to_hubspot(object_type, &fields).await? })
            };
            println!("{}", serde_json::to_string_pretty(&output)?);
        }
    }
    Ok(())
}

async fn sim(args: SimArgs) -> anyhow::Result<()> {
    use hubsync_emulator::{Emulator, EmulatorConfig, PortalConfig, SeedSpec};
    let mut portal = PortalConfig::new(args.portal, args.app);
    portal.private_app_token = Some(args.token.clone());
    portal.webhook_target = args.webhook_target.clone();
    portal.webhook_secret = args.webhook_secret.clone();
    let config = EmulatorConfig {
        portals: vec![portal],
        seed: args.seed,
        ..EmulatorConfig::default()
    };
    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let emulator = Emulator::start(config, listener).await?;
    if args.seed_contacts + args.seed_companies > 0 {
        let spec = SeedSpec {
            contacts: args.seed_contacts,
            companies: args.seed_companies,
            ..SeedSpec::default()
        };
        emulator.admin().seed(args.portal, &spec)?;
    }
    println!("HubSpot emulator at {}", emulator.base_url());
    println!(
        "  portal {} (app {}), private-app token: {}",
        args.portal, args.app, args.token
    );
    println!(
        "  admin API under {}/_emulator/ (see the README); Ctrl-C stops it",
        emulator.base_url()
    );
    tokio::signal::ctrl_c().await?;
    emulator.shutdown().await;
    Ok(())
}

async fn reconcile(
    config: &Config,
    portal: PortalId,
    full: bool,
    dry_run: bool,
) -> anyhow::Result<ExitCode> {
    let store = open_store(config).await?;
    let engine = crate::app::engine(config, Arc::clone(&store))?;
    let stored = store
        .get_portal(portal)
        .await?
        .with_context(|| format!("no portal {portal}; add it with `hubsync portal add`"))?;
    hubsync_engine::setup::connect_portal(&engine, &stored, crate::app::oauth_app(config).as_ref())
        .await?;
    let mut drift = false;
    for ty in hubsync_core::ObjectType::ALL {
        if full {
            let r = hubsync_engine::reconcile::full_pass(&engine, portal, ty, dry_run).await?;
            drift |= r.repaired_local
                + r.repaired_remote
                + r.missing_local
                + r.missing_remote
                + r.conflicts
                > 0;
            println!(
                "{ty:<10} equal {:>7}  repaired local {:>6}  repaired remote {:>6}  conflicts {:>5}  missing local {:>5}  missing remote {:>5}",
                r.equal,
                r.repaired_local,
                r.repaired_remote,
                r.conflicts,
                r.missing_local,
                r.missing_remote
            );
        } else {
            let r = hubsync_engine::reconcile::incremental_pass(&engine, portal, ty).await?;
            println!(
                "{ty:<10} seen {:>7}  repaired local {:>6}  repaired remote {:>6}  conflicts {:>5}  searches {:>4}",
                r.seen, r.repaired_local, r.repaired_remote, r.conflicts, r.searches
            );
        }
    }
    store.close().await;
    Ok(if dry_run && drift {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_redacted_from_database_urls() {
        assert_eq!(
            redact_url("postgres://u:pw@h:5432/db"),
            "postgres://u:***@h:5432/db"
        );
        assert_eq!(redact_url("sqlite://x.db"), "sqlite://x.db");
    }

    #[test]
    fn cli_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
