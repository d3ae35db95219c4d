//! A test bed: an emulator on 127.0.0.1:0 with one portal, and a client pointed at it with
//! short windows and fast backoff so the suite stays quick.

use std::sync::Arc;
use std::time::Duration;

use hubsync_core::PortalId;
use hubsync_emulator::{
    Admin, Emulator, EmulatorConfig, EmulatorHandle, Faults, OAuthClient, PortalConfig,
    PortalStats, Settings, Tier,
};
use hubsync_hubspot::auth::BoxFuture;
use hubsync_hubspot::{
    ClientConfig, HubspotClient, OAuthApp, OAuthTokens, PortalClient, PortalCredentials, TokenStore,
};
use parking_lot::Mutex;
use secrecy::SecretString;

pub const PORTAL: PortalId = PortalId(62515);
pub const APP: u64 = 54321;
pub const TOKEN: &str = "pat-na1-11111111-2222-3333-4444-555555555555";
pub const CLIENT_ID: &str = "client-1";
pub const CLIENT_SECRET: &str = "client-secret-1";
pub const REDIRECT: &str = "http://localhost/callback";

/// What a test varies.
pub struct Setup {
    pub tier: Tier,
    pub settings: Settings,
    pub faults: Faults,
    pub client: ClientConfig,
}

impl Default for Setup {
    fn default() -> Self {
        let settings = Settings {
            burst_window_ms: 1_000,
            ..Settings::default()
        };
        let mut client = ClientConfig::default();
        client.limits.general_max = 100;
        client.limits.general_window = Duration::from_millis(1_000);
        client.retry.backoff_base = Duration::from_millis(5);
        client.retry.backoff_cap = Duration::from_millis(50);
        client.retry.rate_limit_jitter = Duration::from_millis(20);
        client.retry.locked_wait = Duration::from_millis(50);
        Setup {
            tier: Tier::Custom {
                burst: 100,
                daily: 1_000_000,
            },
            settings,
            faults: Faults::default(),
            client,
        }
    }
}

pub struct Bed {
    pub emu: EmulatorHandle,
    pub hubspot: HubspotClient,
    pub portal: PortalClient,
}

impl Bed {
    pub fn admin(&self) -> Admin {
        self.emu.admin()
    }

    pub fn emulator_stats(&self) -> PortalStats {
        self.admin().stats().portal(PORTAL.get())
    }
}

pub fn portal_config(tier: Tier) -> PortalConfig {
    let mut p = PortalConfig::new(PORTAL.get(), APP);
    p.tier = tier;
    p.private_app_token = Some(TOKEN.into());
    p.oauth = Some(OAuthClient {
        client_id: CLIENT_ID.into(),
        client_secret: CLIENT_SECRET.into(),
        redirect_uri: Some(REDIRECT.into()),
        scopes: vec![
            "crm.objects.contacts.read".into(),
            "crm.objects.contacts.write".into(),
        ],
    });
    p
}

pub async fn emulator(setup: &Setup) -> EmulatorHandle {
    let config = EmulatorConfig {
        portals: vec![portal_config(setup.tier)],
        settings: setup.settings.clone(),
        faults: setup.faults.clone(),
        ..EmulatorConfig::default()
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    Emulator::start(config, listener).await.unwrap()
}

/// An emulator and a client registered with the portal's private-app token.
pub async fn start(setup: Setup) -> Bed {
    let emu = emulator(&setup).await;
    let config = ClientConfig {
        base_url: emu.base_url(),
        ..setup.client
    };
    let hubspot = HubspotClient::new(config).unwrap();
    let portal = hubspot.portal(
        PORTAL,
        PortalCredentials::PrivateApp(SecretString::from(TOKEN)),
    );
    Bed {
        emu,
        hubspot,
        portal,
    }
}

pub fn oauth_app() -> OAuthApp {
    OAuthApp {
        client_id: CLIENT_ID.into(),
        client_secret: SecretString::from(CLIENT_SECRET),
    }
}

/// Records every token save (what the engine's store would persist).
#[derive(Default)]
pub struct MemoryTokenStore {
    pub saved: Mutex<Vec<(PortalId, OAuthTokens)>>,
}

impl TokenStore for MemoryTokenStore {
    fn save<'a>(
        &'a self,
        portal: PortalId,
        tokens: &'a OAuthTokens,
    ) -> BoxFuture<'a, Result<(), hubsync_hubspot::auth::TokenStoreError>> {
        Box::pin(async move {
            self.saved.lock().push((portal, tokens.clone()));
            Ok(())
        })
    }
}

/// An emulator and an OAuth client whose tokens come from a real code exchange.
pub async fn start_oauth(setup: Setup) -> (Bed, Arc<MemoryTokenStore>) {
    let emu = emulator(&setup).await;
    let store = Arc::new(MemoryTokenStore::default());
    let config = ClientConfig {
        base_url: emu.base_url(),
        ..setup.client
    };
    let hubspot = HubspotClient::with_token_store(config, store.clone()).unwrap();
    let code = emu
        .admin()
        .authorization_code(PORTAL.get(), Some(REDIRECT.into()))
        .unwrap();
    let grant = hubspot
        .exchange_code(&oauth_app(), &SecretString::from(code), REDIRECT)
        .await
        .unwrap();
    assert_eq!(grant.hub_id, Some(PORTAL));
    let portal = hubspot.portal(
        PORTAL,
        PortalCredentials::OAuth {
            app: oauth_app(),
            tokens: grant.tokens,
        },
    );
    (
        Bed {
            emu,
            hubspot,
            portal,
        },
        store,
    )
}

pub fn props<const N: usize>(
    pairs: [(&str, &str); N],
) -> std::collections::BTreeMap<String, String> {
    pairs
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}
