//! Configuration: the commented `config.default.toml` (embedded; it is both the defaults and the
//! documentation), overlaid by a TOML file and by `HUBSYNC_…` environment variables.
//!
//! Secrets are [`SecretString`]s: they never print in `Debug` output, logs or the status page.
//! Each secret may also be given as `<name>_file`, a path whose contents are the secret.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use figment::Figment;
use figment::providers::{Env, Format, Toml};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

/// The embedded defaults.
pub const DEFAULTS: &str = include_str!("../config.default.toml");

/// hubsync's whole configuration.
#[derive(Debug, Clone, Deserialize)]
pub struct Config {
    /// `sqlite://…` or `postgres://…`.
    pub database_url: String,
    /// Connection pool settings (PostgreSQL).
    pub database: DatabaseConfig,
    /// Directory of mapping overrides; empty for the embedded mappings.
    pub mappings_dir: String,
    /// HubSpot API settings.
    pub hubspot: HubspotConfig,
    /// The HTTP server.
    pub server: ServerConfig,
    /// Webhook verification.
    pub webhooks: WebhooksConfig,
    /// The outbound worker.
    pub outbound: WorkerConfig,
    /// The inbound worker.
    pub inbound: WorkerConfig,
    /// The reconciler.
    pub reconcile: ReconcileConfig,
    /// Conflict policies.
    pub conflicts: ConflictsConfig,
    /// Several processes over one database.
    pub scale: ScaleConfig,
}

/// `[database]`
#[derive(Debug, Clone, Deserialize)]
pub struct DatabaseConfig {
    /// Connections of the main pool.
    pub pool_size: u32,
    /// Connections reserved for lease renewals and acquisitions.
    pub lease_pool_size: u32,
    /// Longest wait for a connection, milliseconds.
    pub acquire_timeout_ms: u64,
    /// Sessions idle inside a transaction longer than this are ended by the server, ms.
    pub idle_in_transaction_timeout_ms: u64,
}

impl DatabaseConfig {
    /// The store's PostgreSQL options.
    pub fn pg_options(&self) -> hubsync_store::PgOptions {
        hubsync_store::PgOptions {
            pool_size: self.pool_size,
            lease_pool_size: self.lease_pool_size,
            acquire_timeout: std::time::Duration::from_millis(self.acquire_timeout_ms),
            idle_in_transaction_timeout: std::time::Duration::from_millis(
                self.idle_in_transaction_timeout_ms,
            ),
            ..hubsync_store::PgOptions::default()
        }
    }
}

/// `[hubspot]`
#[derive(Debug, Clone, Deserialize)]
pub struct HubspotConfig {
    /// API base URL.
    pub base_url: String,
    /// Our app id.
    pub app_id: u64,
    /// OAuth client id.
    pub client_id: String,
    /// OAuth client secret.
    pub client_secret: SecretString,
    /// Default burst tier.
    pub burst_tier: u32,
    /// Search requests per second.
    pub search_per_second: u32,
}

/// `[server]`
#[derive(Debug, Clone, Deserialize)]
pub struct ServerConfig {
    /// Listen address.
    pub listen: String,
    /// Public URL as HubSpot sees it.
    pub public_url: String,
    /// Largest webhook body.
    pub max_body_bytes: usize,
}

/// `[webhooks]`
#[derive(Debug, Clone, Deserialize)]
pub struct WebhooksConfig {
    /// Signing secret.
    pub client_secret: SecretString,
    /// Oldest accepted timestamp, seconds.
    pub max_age_secs: u64,
    /// Accept v1/v2 signatures too.
    pub accept_v1: bool,
}

/// `[outbound]` and `[inbound]`
#[derive(Debug, Clone, Deserialize)]
pub struct WorkerConfig {
    /// Items per step.
    pub batch_size: usize,
    /// Lease length, seconds.
    pub lease_secs: u64,
}

/// `[reconcile]`
#[derive(Debug, Clone, Deserialize)]
pub struct ReconcileConfig {
    /// Seconds between passes.
    pub interval_secs: u64,
    /// Lookback, seconds.
    pub lookback_secs: u64,
    /// Whether the initial import also walks records through the search lane.
    pub import_search_lane: bool,
}

/// `[scale]`
#[derive(Debug, Clone, Deserialize)]
pub struct ScaleConfig {
    /// Portal lease length, seconds.
    pub lease_secs: u64,
    /// This process's name; empty for `hubsync-<pid>`.
    pub process_name: String,
}

/// `[conflicts]`
#[derive(Debug, Clone, Deserialize)]
pub struct ConflictsConfig {
    /// The default policy.
    pub default: hubsync_core::ConflictPolicy,
}

impl Config {
    /// Loads the defaults, then `path` (if given; it must exist), then `./hubsync.toml` if present
    /// and no path was given, then `HUBSYNC_…` environment variables; resolves `*_file` secrets and
    /// validates. Errors name the offending setting.
    pub fn load(path: Option<&Path>) -> anyhow::Result<Config> {
        let mut figment = Figment::new().merge(Toml::string(DEFAULTS));
        match path {
            Some(p) => {
                if !p.is_file() {
                    bail!(
                        "config file {} does not exist or is not a file",
                        p.display()
                    );
                }
                figment = figment.merge(Toml::file(p));
            }
            None if Path::new("hubsync.toml").is_file() => {
                figment = figment.merge(Toml::file("hubsync.toml"))
            }
            None => {}
        }
        figment = figment.merge(Env::prefixed("HUBSYNC_").split("__"));
        let figment = resolve_secret_files(figment)?;
        let config: Config = figment
            .extract()
            .map_err(|e| anyhow::anyhow!("invalid configuration: {e}"))?;
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> anyhow::Result<()> {
        if !(self.database_url.starts_with("sqlite:") || self.database_url.starts_with("postgres"))
        {
            bail!("database_url: expected sqlite://… or postgres://…");
        }
        if !(1..=100).contains(&self.outbound.batch_size) {
            bail!("outbound.batch_size: must be between 1 and 100 (HubSpot's batch limit)");
        }
        if ![100, 110, 190, 250].contains(&self.hubspot.burst_tier) {
            bail!("hubspot.burst_tier: must be one of 100, 110, 190, 250");
        }
        if self.server.listen.parse::<std::net::SocketAddr>().is_err() {
            bail!(
                "server.listen: `{}` is not an address like 127.0.0.1:8080",
                self.server.listen
            );
        }
        if self.webhooks.max_age_secs == 0 {
            bail!("webhooks.max_age_secs: must be positive");
        }
        if self.scale.lease_secs == 0 {
            bail!("scale.lease_secs: must be positive");
        }
        if self.database.pool_size == 0 {
            bail!("database.pool_size: must be positive");
        }
        if self.database.lease_pool_size == 0 {
            bail!("database.lease_pool_size: must be positive");
        }
        if self.database.acquire_timeout_ms == 0 {
            bail!("database.acquire_timeout_ms: must be positive");
        }
        if self.database.idle_in_transaction_timeout_ms == 0 {
            bail!("database.idle_in_transaction_timeout_ms: must be positive");
        }
        Ok(())
    }

    /// The mapping override directory, if one is set.
    pub fn mappings_dir(&self) -> Option<PathBuf> {
        (!self.mappings_dir.is_empty()).then(|| PathBuf::from(&self.mappings_dir))
    }

    /// Whether a webhook secret is configured.
    pub fn has_webhook_secret(&self) -> bool {
        !self.webhooks.client_secret.expose_secret().is_empty()
    }
}

/// For every `<section>.<name>_file` key, reads the file into `<section>.<name>`.
fn resolve_secret_files(figment: Figment) -> anyhow::Result<Figment> {
    const SECRETS: [&str; 2] = ["hubspot.client_secret", "webhooks.client_secret"];
    let mut figment = figment;
    for key in SECRETS {
        let file_key = format!("{key}_file");
        if let Ok(path) = figment.extract_inner::<String>(&file_key) {
            let secret = std::fs::read_to_string(&path)
                .with_context(|| format!("{file_key}: cannot read {path}"))?;
            figment = figment.merge((key, secret.trim().to_owned()));
        }
    }
    Ok(figment)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_load_and_validate() {
        let c: Config = Figment::new()
            .merge(Toml::string(DEFAULTS))
            .extract()
            .unwrap();
        c.validate().unwrap();
        assert_eq!(c.outbound.batch_size, 100);
        assert_eq!(c.database.pg_options(), hubsync_store::PgOptions::default());
    }

    #[test]
    fn pool_settings_are_read_and_validated() {
        let c: Config = Figment::new()
            .merge(Toml::string(DEFAULTS))
            .merge(("database.pool_size", 40))
            .extract()
            .unwrap();
        c.validate().unwrap();
        assert_eq!(c.database.pg_options().pool_size, 40);
        let zero: Config = Figment::new()
            .merge(Toml::string(DEFAULTS))
            .merge(("database.lease_pool_size", 0))
            .extract()
            .unwrap();
        assert!(
            zero.validate()
                .unwrap_err()
                .to_string()
                .contains("database.lease_pool_size")
        );
    }

    #[test]
    fn secrets_do_not_print_in_debug() {
        let c: Config = Figment::new()
            .merge(Toml::string(DEFAULTS))
            .merge(("webhooks.client_secret", "s3cr3t-value"))
            .extract()
            .unwrap();
        assert!(!format!("{c:?}").contains("s3cr3t-value"));
    }
}
