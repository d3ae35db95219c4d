//! The admin API, in process ([`Admin`]) and over HTTP under `/_emulator/...`: portals, a
//! person acting in the HubSpot UI (webhooks with `changeSource: CRM_UI`), dumps, bulk seeding,
//! faults, settings, tokens and counters.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use rand::SeedableRng;
use rand::rngs::StdRng;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::api::{Req, json_resp};
use crate::config::{Faults, PortalConfig, Settings};
use crate::error::{ApiError, EmulatorError};
use crate::model::{ObjectKind, now_ms};
use crate::portal::{Actor, ChangeEvent, PropSelection, WriteCtx};
use crate::seed::{SeedReport, SeedSpec};
use crate::state::{Portal, Shared, TokenInfo, TokenKind};
use crate::stats::StatsSnapshot;
use crate::store::default_assoc;
use crate::{oauth, webhooks};

/// The user id the admin acts as when none is given.
pub const DEFAULT_USER_ID: u64 = 7_654_321;

/// In-process admin handle. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Admin {
    pub(crate) shared: Arc<Shared>,
}

fn rejected(e: ApiError) -> EmulatorError {
    EmulatorError::Rejected {
        status: e.status.as_u16(),
        message: e
            .body
            .get("message")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned(),
    }
}

/// Registers a portal, its tokens and its webhook dispatcher.
pub(crate) fn install_portal(shared: &Arc<Shared>, cfg: PortalConfig) -> Result<(), EmulatorError> {
    if shared.portals.read().contains_key(&cfg.portal_id) {
        return Err(EmulatorError::PortalExists(cfg.portal_id));
    }
    let handle = tokio::runtime::Handle::try_current().map_err(|_| {
        EmulatorError::InvalidConfig("portals must be added inside a tokio runtime".into())
    })?;
    if let Some(t) = &cfg.private_app_token {
        shared.tokens.write().access.insert(
            t.clone(),
            TokenInfo {
                portal: cfg.portal_id,
                app: cfg.app_id,
                kind: TokenKind::Private,
                expires_at: None,
            },
        );
    }
    let portal = Arc::new(Portal::new(cfg, shared.seed));
    shared
        .portals
        .write()
        .insert(portal.id, Arc::clone(&portal));
    handle.spawn(webhooks::dispatcher(Arc::clone(shared), portal));
    Ok(())
}

fn props_map<K: Into<String>, V: Into<String>>(
    props: impl IntoIterator<Item = (K, V)>,
) -> Map<String, Value> {
    props
        .into_iter()
        .map(|(k, v)| (k.into(), Value::String(v.into())))
        .collect()
}

impl Admin {
    fn portal(&self, id: u64) -> Result<Arc<Portal>, EmulatorError> {
        self.shared
            .portal(id)
            .ok_or(EmulatorError::PortalNotFound(id))
    }

    fn ctx(&self, user: u64) -> WriteCtx {
        WriteCtx::from_settings(&self.shared.settings.read(), Actor::User(user))
    }

    fn emit(&self, portal: &Portal, events: Vec<ChangeEvent>) {
        webhooks::emit(&self.shared, portal, events);
    }

    /// Adds a portal at runtime.
    pub fn add_portal(&self, cfg: PortalConfig) -> Result<(), EmulatorError> {
        install_portal(&self.shared, cfg)
    }

    /// Removes a portal, its tokens and its pending webhooks.
    pub fn remove_portal(&self, portal_id: u64) -> Result<(), EmulatorError> {
        let p = self
            .shared
            .portals
            .write()
            .remove(&portal_id)
            .ok_or(EmulatorError::PortalNotFound(portal_id))?;
        p.removed.store(true, Ordering::SeqCst);
        let mut t = self.shared.tokens.write();
        t.access.retain(|_, i| i.portal != portal_id);
        t.refresh.retain(|_, i| i.portal != portal_id);
        t.codes.retain(|_, i| i.portal != portal_id);
        Ok(())
    }

    /// Ids of all portals.
    pub fn portal_ids(&self) -> Vec<u64> {
        let mut v: Vec<u64> = self.shared.portals.read().keys().copied().collect();
        v.sort_unstable();
        v
    }

    /// Sets a portal's webhook target and/or signing secret.
    pub fn set_webhook(
        &self,
        portal_id: u64,
        target: Option<String>,
        secret: Option<String>,
    ) -> Result<(), EmulatorError> {
        let p = self.portal(portal_id)?;
        let mut cfg = p.cfg.write();
        cfg.webhook_target = target;
        if let Some(s) = secret {
            cfg.webhook_secret = s;
        }
        Ok(())
    }

    /// Creates a record as a person in the UI; returns its id.
    pub fn create<K: Into<String>, V: Into<String>>(
        &self,
        portal_id: u64,
        kind: ObjectKind,
        props: impl IntoIterator<Item = (K, V)>,
        user_id: u64,
    ) -> Result<u64, EmulatorError> {
        let p = self.portal(portal_id)?;
        let mut events = Vec::new();
        let id = {
            let mut data = p.data.write();
            let w = data.prepare(kind, &props_map(props)).map_err(rejected)?;
            data.create(kind, w, &self.ctx(user_id), &mut events)
                .map_err(rejected)?
        };
        self.emit(&p, events);
        Ok(id)
    }

    /// Edits properties as a person in the UI (`""` clears a value).
    pub fn update<K: Into<String>, V: Into<String>>(
        &self,
        portal_id: u64,
        kind: ObjectKind,
        id: u64,
        props: impl IntoIterator<Item = (K, V)>,
        user_id: u64,
    ) -> Result<(), EmulatorError> {
        let p = self.portal(portal_id)?;
        let mut events = Vec::new();
        {
            let mut data = p.data.write();
            let rid = data.store(kind).resolve(id);
            if !data.store(kind).live.contains_key(&rid) {
                return Err(EmulatorError::ObjectNotFound {
                    kind: kind.plural(),
                    id,
                });
            }
            let w = data.prepare(kind, &props_map(props)).map_err(rejected)?;
            data.update(kind, rid, &w, &self.ctx(user_id), &mut events)
                .map_err(rejected)?;
        }
        self.emit(&p, events);
        Ok(())
    }

    /// Deletes (archives) a record as a person in the UI.
    pub fn archive(
        &self,
        portal_id: u64,
        kind: ObjectKind,
        id: u64,
        user_id: u64,
    ) -> Result<(), EmulatorError> {
        let p = self.portal(portal_id)?;
        let mut events = Vec::new();
        let ok = p
            .data
            .write()
            .archive(kind, id, &self.ctx(user_id), &mut events);
        self.emit(&p, events);
        if ok {
            Ok(())
        } else {
            Err(EmulatorError::ObjectNotFound {
                kind: kind.plural(),
                id,
            })
        }
    }

    /// Restores an archived record from the recycle bin.
    pub fn restore(
        &self,
        portal_id: u64,
        kind: ObjectKind,
        id: u64,
        user_id: u64,
    ) -> Result<(), EmulatorError> {
        let p = self.portal(portal_id)?;
        let mut events = Vec::new();
        let r = p
            .data
            .write()
            .restore(kind, id, &self.ctx(user_id), &mut events);
        self.emit(&p, events);
        r.map_err(rejected)
    }

    /// Merges `secondary` into `primary` as a person in the UI; returns the resulting id.
    pub fn merge(
        &self,
        portal_id: u64,
        kind: ObjectKind,
        primary: u64,
        secondary: u64,
        user_id: u64,
    ) -> Result<u64, EmulatorError> {
        let p = self.portal(portal_id)?;
        let mut events = Vec::new();
        let r = p
            .data
            .write()
            .merge(kind, primary, secondary, &self.ctx(user_id), &mut events);
        self.emit(&p, events);
        r.map_err(rejected)
    }

    /// Associates two records (default type unless `type_id`) as a person in the UI.
    pub fn associate(
        &self,
        portal_id: u64,
        from: (ObjectKind, u64),
        to: (ObjectKind, u64),
        type_id: Option<u32>,
        user_id: u64,
    ) -> Result<(), EmulatorError> {
        let p = self.portal(portal_id)?;
        let ty = type_id.unwrap_or_else(|| default_assoc(from.0, to.0).id);
        let mut events = Vec::new();
        let r = p
            .data
            .write()
            .associate(from, to, ty, &self.ctx(user_id), &mut events);
        self.emit(&p, events);
        r.map_err(rejected)
    }

    /// Removes all associations between two records as a person in the UI.
    pub fn dissociate(
        &self,
        portal_id: u64,
        a: (ObjectKind, u64),
        b: (ObjectKind, u64),
        user_id: u64,
    ) -> Result<(), EmulatorError> {
        let p = self.portal(portal_id)?;
        let mut events = Vec::new();
        p.data
            .write()
            .dissociate(a, b, &self.ctx(user_id), &mut events);
        self.emit(&p, events);
        Ok(())
    }

    /// A record as the API would render it with all its properties (following merges).
    pub fn get(
        &self,
        portal_id: u64,
        kind: ObjectKind,
        id: u64,
    ) -> Result<Option<Value>, EmulatorError> {
        let p = self.portal(portal_id)?;
        let data = p.data.read();
        let store = data.store(kind);
        let rid = store.resolve(id);
        let rec = store.live.get(&rid).or_else(|| store.archived.get(&rid));
        Ok(rec.map(|r| {
            let names: Vec<String> = r
                .props
                .iter()
                .map(|(i, _)| data.reg(kind).def(*i).name.clone())
                .collect();
            data.render(kind, rid, r, &PropSelection::DefaultPlus(names))
        }))
    }

    /// The full state of a portal: every record (live, archived), merged ids and associations.
    pub fn dump(&self, portal_id: u64) -> Result<Value, EmulatorError> {
        Ok(self.portal(portal_id)?.data.read().dump())
    }

    /// Number of live records of a kind.
    pub fn count(&self, portal_id: u64, kind: ObjectKind) -> Result<usize, EmulatorError> {
        Ok(self.portal(portal_id)?.data.read().store(kind).live.len())
    }

    /// Seeds realistic records quickly (no webhooks).
    pub fn seed(&self, portal_id: u64, spec: &SeedSpec) -> Result<SeedReport, EmulatorError> {
        let p = self.portal(portal_id)?;
        let mut data = p.data.write();
        Ok(crate::seed::seed(
            &mut data,
            spec,
            self.shared.seed ^ portal_id,
        ))
    }

    /// Current faults.
    pub fn faults(&self) -> Faults {
        self.shared.faults.read().clone()
    }

    /// Replaces the faults and reseeds every fault generator from the emulator seed, so the
    /// sequence after this call is reproducible.
    pub fn set_faults(&self, faults: Faults) {
        *self.shared.faults.write() = faults;
        for p in self.shared.portals.read().values() {
            let mix = self.shared.seed ^ p.id.wrapping_mul(0x9e37_79b9_7f4a_7c15);
            *p.api_rng.lock() = StdRng::seed_from_u64(mix ^ 0x41);
            p.webhooks.reseed(StdRng::seed_from_u64(mix ^ 0x77));
        }
    }

    /// Current settings.
    pub fn settings(&self) -> Settings {
        self.shared.settings.read().clone()
    }

    /// Replaces the settings.
    pub fn set_settings(&self, settings: Settings) {
        *self.shared.settings.write() = settings;
    }

    /// Changes settings in place.
    pub fn update_settings(&self, f: impl FnOnce(&mut Settings)) {
        f(&mut self.shared.settings.write());
    }

    /// Makes every OAuth access token expire now.
    pub fn expire_all_tokens(&self) {
        let now = now_ms();
        for t in self.shared.tokens.write().access.values_mut() {
            if t.kind == TokenKind::OAuth {
                t.expires_at = Some(now);
            }
        }
    }

    /// Issues an authorization code for the portal's OAuth client (what consent would return).
    pub fn authorization_code(
        &self,
        portal_id: u64,
        redirect_uri: Option<String>,
    ) -> Result<String, EmulatorError> {
        oauth::issue_code(&self.shared, portal_id, redirect_uri)
    }

    /// A snapshot of every counter.
    pub fn stats(&self) -> StatsSnapshot {
        self.shared.stats.snapshot()
    }

    /// Zeroes every counter.
    pub fn reset_stats(&self) {
        self.shared.stats.reset();
    }

    /// Clears a portal's rate-limit windows and daily count.
    pub fn reset_rate_limits(&self, portal_id: u64) -> Result<(), EmulatorError> {
        *self.portal(portal_id)?.limiter.lock() = crate::limits::Limiter::default();
        Ok(())
    }

    /// Makes every pending write visible to search now.
    pub fn flush_search(&self, portal_id: u64) -> Result<(), EmulatorError> {
        let p = self.portal(portal_id)?;
        for s in &mut p.data.write().stores {
            s.overlay.clear();
        }
        Ok(())
    }

    /// Webhook events queued or in flight for a portal.
    pub fn webhooks_pending(&self, portal_id: u64) -> Result<usize, EmulatorError> {
        Ok(self.portal(portal_id)?.webhooks.pending())
    }

    /// Waits until no webhook is queued or in flight in any portal; `false` on timeout.
    pub async fn wait_webhooks_idle(&self, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let busy = self
                .shared
                .portals
                .read()
                .values()
                .any(|p| p.webhooks.pending() > 0);
            if !busy {
                return true;
            }
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct WebhookIn {
    #[serde(default)]
    target_url: Option<String>,
    #[serde(default)]
    secret: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct AsUserIn {
    #[serde(default)]
    properties: Map<String, Value>,
    #[serde(default)]
    user_id: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct MergeIn {
    primary_object_id: Value,
    object_id_to_merge: Value,
    #[serde(default)]
    user_id: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct AssocIn {
    from_object_type: String,
    from_object_id: Value,
    to_object_type: String,
    to_object_id: Value,
    #[serde(default)]
    association_type_id: Option<u32>,
    #[serde(default)]
    remove: bool,
    #[serde(default)]
    user_id: Option<u64>,
}

fn id_of(v: &Value) -> Result<u64, ApiError> {
    match v {
        Value::String(s) => s.trim().parse().ok(),
        other => other.as_u64(),
    }
    .ok_or_else(|| ApiError::validation(format!("invalid id {v}")))
}

fn to_api(e: EmulatorError) -> ApiError {
    match e {
        EmulatorError::Rejected { status, message } => {
            let st = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
            ApiError::new(st, "VALIDATION_ERROR", message)
        }
        EmulatorError::PortalNotFound(_) | EmulatorError::ObjectNotFound { .. } => {
            ApiError::new(StatusCode::NOT_FOUND, "OBJECT_NOT_FOUND", e.to_string())
        }
        EmulatorError::PortalExists(_) => {
            ApiError::new(StatusCode::CONFLICT, "CONFLICT", e.to_string())
        }
        other => ApiError::validation(other.to_string()),
    }
}

fn ok_json(v: Value) -> Result<Response, ApiError> {
    Ok(json_resp(StatusCode::OK, v))
}

fn no_content() -> Result<Response, ApiError> {
    Ok(StatusCode::NO_CONTENT.into_response())
}

fn kind(s: &str) -> Result<ObjectKind, ApiError> {
    ObjectKind::parse(s)
        .ok_or_else(|| ApiError::validation(format!("Unable to infer object type from: {s}")))
}

/// Handles `/_emulator/...`.
pub async fn handle_http(sh: &Arc<Shared>, req: &Req) -> Result<Response, ApiError> {
    let admin = Admin {
        shared: Arc::clone(sh),
    };
    let s: Vec<&str> = req.segs.iter().map(String::as_str).collect();
    let m = &req.method;
    let pid = |x: &str| {
        x.parse::<u64>()
            .map_err(|_| ApiError::validation(format!("invalid portal id {x}")))
    };
    match (m, &s[1..]) {
        (&Method::GET, ["health"]) => ok_json(json!({"status": "ok"})),
        (&Method::GET, ["portals"]) => ok_json(json!({"portals": admin.portal_ids()})),
        (&Method::POST, ["portals"]) => {
            let cfg: PortalConfig = req.parse()?;
            admin.add_portal(cfg).map_err(to_api)?;
            Ok(StatusCode::CREATED.into_response())
        }
        (&Method::DELETE, ["portals", p]) => {
            admin.remove_portal(pid(p)?).map_err(to_api)?;
            no_content()
        }
        (&Method::PUT, ["portals", p, "webhook"]) => {
            let w: WebhookIn = req.parse()?;
            let id = pid(p)?;
            let target = match w.target_url {
                Some(t) => Some(t),
                None => admin
                    .portal(id)
                    .map_err(to_api)?
                    .cfg
                    .read()
                    .webhook_target
                    .clone(),
            };
            admin.set_webhook(id, target, w.secret).map_err(to_api)?;
            no_content()
        }
        (&Method::GET, ["portals", p, "dump"]) => ok_json(admin.dump(pid(p)?).map_err(to_api)?),
        (&Method::POST, ["portals", p, "seed"]) => {
            let spec: SeedSpec = req.parse()?;
            let r = admin.seed(pid(p)?, &spec).map_err(to_api)?;
            ok_json(serde_json::to_value(r).unwrap_or(Value::Null))
        }
        (&Method::POST, ["portals", p, "oauth", "code"]) => {
            #[derive(Deserialize, Default)]
            #[serde(rename_all = "camelCase")]
            struct In {
                #[serde(default)]
                redirect_uri: Option<String>,
            }
            let i: In = req.parse()?;
            let code = admin
                .authorization_code(pid(p)?, i.redirect_uri)
                .map_err(to_api)?;
            ok_json(json!({"code": code}))
        }
        (&Method::POST, ["portals", p, "search", "flush"]) => {
            admin.flush_search(pid(p)?).map_err(to_api)?;
            no_content()
        }
        (&Method::POST, ["portals", p, "rate-limits", "reset"]) => {
            admin.reset_rate_limits(pid(p)?).map_err(to_api)?;
            no_content()
        }
        (&Method::POST, ["portals", p, "associations"]) => {
            let a: AssocIn = req.parse()?;
            let from = (kind(&a.from_object_type)?, id_of(&a.from_object_id)?);
            let to = (kind(&a.to_object_type)?, id_of(&a.to_object_id)?);
            let user = a.user_id.unwrap_or(DEFAULT_USER_ID);
            if a.remove {
                admin.dissociate(pid(p)?, from, to, user).map_err(to_api)?;
            } else {
                admin
                    .associate(pid(p)?, from, to, a.association_type_id, user)
                    .map_err(to_api)?;
            }
            no_content()
        }
        (&Method::POST, ["portals", p, "objects", t]) => {
            let i: AsUserIn = req.parse()?;
            let props: Vec<(String, String)> = i
                .properties
                .into_iter()
                .map(|(k, v)| (k, v.as_str().map_or_else(|| v.to_string(), str::to_owned)))
                .collect();
            let id = admin
                .create(
                    pid(p)?,
                    kind(t)?,
                    props,
                    i.user_id.unwrap_or(DEFAULT_USER_ID),
                )
                .map_err(to_api)?;
            Ok(json_resp(
                StatusCode::CREATED,
                json!({"id": id.to_string()}),
            ))
        }
        (&Method::POST, ["portals", p, "objects", t, "merge"]) => {
            let i: MergeIn = req.parse()?;
            let id = admin
                .merge(
                    pid(p)?,
                    kind(t)?,
                    id_of(&i.primary_object_id)?,
                    id_of(&i.object_id_to_merge)?,
                    i.user_id.unwrap_or(DEFAULT_USER_ID),
                )
                .map_err(to_api)?;
            ok_json(json!({"id": id.to_string()}))
        }
        (&Method::GET, ["portals", p, "objects", t, id]) => {
            let v = admin
                .get(pid(p)?, kind(t)?, id_of(&json!(id))?)
                .map_err(to_api)?;
            v.map_or_else(|| Err(ApiError::object_not_found(id)), ok_json)
        }
        (&Method::PATCH, ["portals", p, "objects", t, id]) => {
            let i: AsUserIn = req.parse()?;
            let props: Vec<(String, String)> = i
                .properties
                .into_iter()
                .map(|(k, v)| (k, v.as_str().map_or_else(|| v.to_string(), str::to_owned)))
                .collect();
            admin
                .update(
                    pid(p)?,
                    kind(t)?,
                    id_of(&json!(id))?,
                    props,
                    i.user_id.unwrap_or(DEFAULT_USER_ID),
                )
                .map_err(to_api)?;
            no_content()
        }
        (&Method::DELETE, ["portals", p, "objects", t, id]) => {
            let user = req
                .q("userId")
                .and_then(|u| u.parse().ok())
                .unwrap_or(DEFAULT_USER_ID);
            admin
                .archive(pid(p)?, kind(t)?, id_of(&json!(id))?, user)
                .map_err(to_api)?;
            no_content()
        }
        (&Method::POST, ["portals", p, "objects", t, id, "restore"]) => {
            let user = req
                .q("userId")
                .and_then(|u| u.parse().ok())
                .unwrap_or(DEFAULT_USER_ID);
            admin
                .restore(pid(p)?, kind(t)?, id_of(&json!(id))?, user)
                .map_err(to_api)?;
            no_content()
        }
        (&Method::GET, ["faults"]) => {
            ok_json(serde_json::to_value(admin.faults()).unwrap_or(Value::Null))
        }
        (&Method::PUT, ["faults"]) => {
            let f: Faults = req.parse()?;
            admin.set_faults(f);
            no_content()
        }
        (&Method::GET, ["settings"]) => {
            ok_json(serde_json::to_value(admin.settings()).unwrap_or(Value::Null))
        }
        (&Method::PUT, ["settings"]) => {
            let st: Settings = req.parse()?;
            admin.set_settings(st);
            no_content()
        }
        (&Method::POST, ["tokens", "expire"]) => {
            admin.expire_all_tokens();
            no_content()
        }
        (&Method::GET, ["stats"]) => {
            ok_json(serde_json::to_value(admin.stats()).unwrap_or(Value::Null))
        }
        (&Method::POST, ["stats", "reset"]) => {
            admin.reset_stats();
            no_content()
        }
        (&Method::GET, ["webhooks", "pending"]) => {
            let total: usize = sh
                .portals
                .read()
                .values()
                .map(|p| p.webhooks.pending())
                .sum();
            ok_json(json!({"pending": total}))
        }
        _ => Err(ApiError::route_not_found(
            m.as_str(),
            &format!("/{}", s.join("/")),
        )),
    }
}
