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
}

/// `hubsync dlq …`
#[derive(Debug, Subcommand)]
pub enum DlqCommand {
    /// List a portal's dead letters, newest first.
    List(PortalArg),
    /// Show one dead letter in full.
    Show {
        #[command(flatten)]
        portal: PortalArg,
        /// The dead letter's id.
        id: i64,
    },
    /// Put a dead letter back on its queue for another attempt.
    Retry {
        #[command(flatten)]
        portal: PortalArg,
        /// The dead letter's id.
        id: i64,
    },
    /// Delete a dead letter for good.
    Drop {
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
    crate::telemetry::init(cli.log_json, "info");
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
    if error.chain().any(|e| e.downcast_ref::<hubsync_store::StoreError>().is_some()) {
        3
    } else {
        2
    }
}

/// Runs one parsed command.
pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let config = Config::load(cli.config.as_deref())?;
    match cli.command {
        Command::Migrate => {
            let store = open_store(&config).await?;
            println!("database at {} is migrated ({})", redact_url(&config.database_url), store.backend());
            store.close().await;
        }
        Command::Status { json } => status(&config, json).await?,
        Command::Dlq(cmd) => dlq(&config, cmd).await?,
        Command::Conflicts(ConflictsCommand::List { portal, limit }) => {
            let store = open_store(&config).await?;
            for c in store.list_conflicts(PortalId(portal.portal), None, limit).await? {
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
    }
    Ok(ExitCode::SUCCESS)
}

/// Opens (and migrates) the configured database.
pub async fn open_store(config: &Config) -> anyhow::Result<Arc<dyn Store>> {
    hubsync_store::connect(&config.database_url)
        .await
        .with_context(|| format!("cannot open the database at {}", redact_url(&config.database_url)))
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
        println!("{:<12} {:<14} {:>8} {:>8} {:>6} {:>9}", "portal", "status", "outbox", "inbox", "dlq", "conflicts");
        for r in &rows {
            println!(
                "{:<12} {:<14} {:>8} {:>8} {:>6} {:>9}",
                r["portal"], r["status"].as_str().unwrap_or(""), r["outbox"], r["inbox"], r["dead_letters"], r["conflicts"]
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
            for d in store.list_dead_letters(PortalId(p.portal), None, 100).await? {
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
        DlqCommand::Show { portal, id } => match store.get_dead_letter(PortalId(portal.portal), id).await? {
            Some(d) => println!("{d:#?}"),
            None => anyhow::bail!("no dead letter #{id} in portal {}", portal.portal),
        },
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
        PortalCommand::Add { portal_id, name, token } => {
            let portal = hubsync_store::Portal {
                portal_id: PortalId(portal_id),
                name,
                app_id: (config.hubspot.app_id > 0).then_some(hubsync_core::AppId(config.hubspot.app_id)),
                auth: hubsync_store::PortalAuth(serde_json::json!({"kind": "private_app", "token": token})),
                status: hubsync_store::PortalStatus::Active,
                status_reason: None,
                config: serde_json::json!({"burst_tier": config.hubspot.burst_tier}),
                created_at: 0,
            };
            store.upsert_portal(&portal).await?;
            println!("portal {portal_id} added");
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_redacted_from_database_urls() {
        assert_eq!(redact_url("postgres://u:pw@h:5432/db"), "postgres://u:***@h:5432/db");
        assert_eq!(redact_url("sqlite://x.db"), "sqlite://x.db");
    }

    #[test]
    fn cli_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
