//! Wiring: builds the engine from the configuration — the one place the binary assembles the
//! store, the mappings, the HubSpot client and the settings.

use std::sync::Arc;

use anyhow::Context;
use hubsync_core::{AppId, ObjectType, PolicySet};
use hubsync_engine::{Engine, EngineSettings};
use hubsync_hubspot::{ClientConfig, HubspotClient, OAuthApp};
use hubsync_mapping::{MappingOptions, Mappings};
use hubsync_store::Store;

use crate::config::Config;

/// Loads and checks the mappings named by the configuration.
pub fn mappings(config: &Config) -> anyhow::Result<Mappings> {
    let options = MappingOptions {
        dir: config.mappings_dir(),
        ..MappingOptions::default()
    };
    Mappings::load(&options).context("the mappings do not load")
}

/// The OAuth client of our app, if configured.
pub fn oauth_app(config: &Config) -> Option<OAuthApp> {
    (!config.hubspot.client_id.is_empty()).then(|| OAuthApp {
        client_id: config.hubspot.client_id.clone(),
        client_secret: config.hubspot.client_secret.clone(),
    })
}

/// Builds the engine over an open store.
pub fn engine(config: &Config, store: Arc<dyn Store>) -> anyhow::Result<Engine> {
    let mut client_config = ClientConfig::with_base_url(config.hubspot.base_url.clone());
    client_config.limits.general_max = config.hubspot.burst_tier;
    client_config.limits.search_max = config.hubspot.search_per_second;
    let tokens = Arc::new(hubsync_engine::setup::StoreTokens(Arc::clone(&store)));
    let hubspot = HubspotClient::with_token_store(client_config, tokens)
        .context("cannot build the HubSpot client")?;
    let policy = PolicySet {
        default: config.conflicts.default,
        ..PolicySet::default()
    };
    let mut settings = EngineSettings {
        app_id: (config.hubspot.app_id > 0).then_some(AppId(config.hubspot.app_id)),
        outbound_batch: config.outbound.batch_size,
        outbound_lease: std::time::Duration::from_secs(config.outbound.lease_secs),
        inbound_batch: config.inbound.batch_size as u32,
        inbound_lease: std::time::Duration::from_secs(config.inbound.lease_secs),
        reconcile_interval: std::time::Duration::from_secs(config.reconcile.interval_secs),
        reconcile_lookback: std::time::Duration::from_secs(config.reconcile.lookback_secs),
        import_search_lane: config.reconcile.import_search_lane,
        policies: ObjectType::ALL
            .iter()
            .map(|t| (*t, policy.clone()))
            .collect(),
        lease_period: std::time::Duration::from_secs(config.scale.lease_secs),
        ..EngineSettings::default()
    };
    if !config.scale.process_name.is_empty() {
        settings.worker_id = config.scale.process_name.clone();
    }
    Ok(Engine {
        store,
        mappings: Arc::new(mappings(config)?),
        hubspot,
        settings: Arc::new(settings),
    })
}
