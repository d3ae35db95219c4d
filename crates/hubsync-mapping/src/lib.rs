//! Declarative translation between HubSpot's objects and hubsync's flat unified model.
//!
//! The translation is data, not Rust code. Per object type, the mapping directory holds:
//! - `<type>.to_unified.jsonata`: a JSONata expression from a HubSpot object
//!   (`{id, properties: {…}}`) to a unified object;
//! - `<type>.to_hubspot.jsonata`: a JSONata expression from a unified object to
//!   `{properties: {…}}`;
//! - `<type>.fields.toml`: the unified fields (type, the HubSpot properties each is made from),
//!   the custom-property rules, and the filter translation rules (local SQL and HubSpot search).
//!
//! The shipped files are embedded; a user directory overrides them file by file. Everything is
//! compiled and checked by [`Mappings::load`], which names the file, line and expression of
//! anything broken.
//!
//! This crate owns the invariants fingerprints rely on: every value leaves in canonical form
//! (see [`Mappings::normalize`]), server-computed properties never enter a record, and
//! `to_unified(to_hubspot(x)) == x` for every valid record `x`.
//!
//! jsonata-core's values are `!Send`, so expressions run on a small pool of dedicated threads
//! that each hold their own compiled copies; the async methods send a batch over a channel and
//! await the answer.
//!
//! # Layout
//! - [`filter`]: query parsing and translation to HubSpot `filterGroups` and SQL conditions.
//! - [`spec`]: the field declarations.
//! - [`MappingError`]: load and per-record errors.

mod error;
pub mod filter;
mod locate;
mod pool;
pub mod spec;
mod translate;
mod value;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use hubsync_core::{FieldMap, ObjectType};
use jsonata_core::evaluator::EvaluatorOptions;
use serde_json::{Value, json};
use tokio::sync::oneshot;

pub use error::MappingError;
pub use filter::{
    Filter, FilterError, FilterGroup, FilterRules, Op, Operand, SearchFilter, SqlFilter, SqlOp,
};
pub use translate::property_changes;

use crate::pool::{Job, Pool};
use crate::spec::ObjectSpec;

/// HubSpot properties: name → value, where `""` clears the property.
pub type Properties = BTreeMap<String, String>;

/// The shipped mapping files, by file name.
pub const EMBEDDED: [(&str, &str); 9] = [
    (
        "contacts.to_unified.jsonata",
        include_str!("../../../mappings/contacts.to_unified.jsonata"),
    ),
    (
        "contacts.to_hubspot.jsonata",
        include_str!("../../../mappings/contacts.to_hubspot.jsonata"),
    ),
    (
        "contacts.fields.toml",
        include_str!("../../../mappings/contacts.fields.toml"),
    ),
    (
        "companies.to_unified.jsonata",
        include_str!("../../../mappings/companies.to_unified.jsonata"),
    ),
    (
        "companies.to_hubspot.jsonata",
        include_str!("../../../mappings/companies.to_hubspot.jsonata"),
    ),
    (
        "companies.fields.toml",
        include_str!("../../../mappings/companies.fields.toml"),
    ),
    (
        "deals.to_unified.jsonata",
        include_str!("../../../mappings/deals.to_unified.jsonata"),
    ),
    (
        "deals.to_hubspot.jsonata",
        include_str!("../../../mappings/deals.to_hubspot.jsonata"),
    ),
    (
        "deals.fields.toml",
        include_str!("../../../mappings/deals.fields.toml"),
    ),
];

/// How mappings are loaded and evaluated.
#[derive(Debug, Clone)]
pub struct MappingOptions {
    /// A directory whose files override the shipped ones (each missing file falls back).
    pub dir: Option<PathBuf>,
    /// The number of evaluation threads.
    pub workers: usize,
    /// The evaluation time limit for one record, in milliseconds.
    pub timeout_ms: u64,
    /// The evaluation stack depth limit.
    pub max_stack_depth: usize,
}

impl Default for MappingOptions {
    fn default() -> Self {
        MappingOptions {
            dir: None,
            workers: 2,
            timeout_ms: 1_000,
            max_stack_depth: 500,
        }
    }
}

impl MappingOptions {
    fn evaluator(&self) -> EvaluatorOptions {
        EvaluatorOptions {
            timeout_ms: Some(self.timeout_ms),
            max_stack_depth: Some(self.max_stack_depth),
            max_sequence_length: Some(100_000),
            cancel: None,
        }
    }
}

/// One loaded file: its name (as shown in errors) and text.
#[derive(Debug, Clone)]
pub(crate) struct Source {
    pub(crate) name: String,
    pub(crate) text: String,
}

/// Everything loaded for one object type.
#[derive(Debug)]
pub(crate) struct ObjectMapping {
    pub(crate) to_unified: Source,
    pub(crate) to_hubspot: Source,
    pub(crate) spec: ObjectSpec,
    filters: FilterRules,
    synced: Vec<String>,
}

/// The loaded, checked mappings of every object type (shared with the threads).
#[derive(Debug)]
pub(crate) struct Catalog {
    objects: Vec<ObjectMapping>,
}

impl Catalog {
    pub(crate) fn object(&self, ty: ObjectType) -> &ObjectMapping {
        &self.objects[pool::index(ty)]
    }
}

/// The mapping service: checked mappings, filter rules and the evaluation threads.
/// Cheap to share behind an `Arc`; dropping it stops the threads.
pub struct Mappings {
    catalog: Arc<Catalog>,
    pool: Pool,
}

impl std::fmt::Debug for Mappings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mappings").finish_non_exhaustive()
    }
}

impl Mappings {
    /// Loads, compiles and checks every mapping, then starts the evaluation threads.
    ///
    /// Fails fast, naming the file (and for expressions the line, column and source line),
    /// when a file is unreadable, an expression does not compile or fails on an empty record,
    /// or a fields file is malformed.
    pub fn load(options: &MappingOptions) -> Result<Mappings, MappingError> {
        let evaluator = options.evaluator();
        let mut objects = Vec::with_capacity(ObjectType::ALL.len());
        for ty in ObjectType::ALL {
            let to_unified = read(options.dir.as_deref(), &format!("{ty}.to_unified.jsonata"))?;
            let to_hubspot = read(options.dir.as_deref(), &format!("{ty}.to_hubspot.jsonata"))?;
            let fields = read(options.dir.as_deref(), &format!("{ty}.fields.toml"))?;
            let spec = ObjectSpec::parse(&fields.name, &fields.text)?;
            // Compile here (the threads compile their own copies) and try each expression on
            // an empty record, which catches calls to functions that do not exist.
            let unified = locate::compile(&to_unified.name, &to_unified.text, &evaluator)?;
            translate::to_unified(
                &spec,
                &to_unified.name,
                &unified,
                json!({"id": "0", "properties": {}}),
            )
            .map_err(|e| in_file(&to_unified.name, e))?;
            let hubspot = locate::compile(&to_hubspot.name, &to_hubspot.text, &evaluator)?;
            translate::to_hubspot(&spec, &to_hubspot.name, &hubspot, &FieldMap::new())
                .map_err(|e| in_file(&to_hubspot.name, e))?;
            let synced = spec.mapped.iter().cloned().collect();
            objects.push(ObjectMapping {
                to_unified,
                to_hubspot,
                filters: FilterRules::new(spec.clone()),
                spec,
                synced,
            });
            tracing::debug!(object_type = %ty, "mappings loaded");
        }
        let catalog = Arc::new(Catalog { objects });
        let pool = Pool::start(Arc::clone(&catalog), options.workers, evaluator)?;
        Ok(Mappings { catalog, pool })
    }

    /// The shipped mappings with default options.
    pub fn embedded() -> Result<Mappings, MappingError> {
        Mappings::load(&MappingOptions::default())
    }

    /// Translates one HubSpot object (`{id, properties}`) into a unified record.
    pub async fn to_unified(
        &self,
        ty: ObjectType,
        object: Value,
    ) -> Result<FieldMap, MappingError> {
        single(self.to_unified_batch(ty, vec![object]).await?)
    }

    /// Translates many HubSpot objects in one round trip to a mapping thread; one result per
    /// object, in order. The outer error means the service is gone.
    pub async fn to_unified_batch(
        &self,
        ty: ObjectType,
        objects: Vec<Value>,
    ) -> Result<Vec<Result<FieldMap, MappingError>>, MappingError> {
        let (reply, answer) = oneshot::channel();
        self.pool.submit(Job::ToUnified { ty, objects, reply })?;
        answer.await.map_err(|_| MappingError::PoolClosed)
    }

    /// Translates one unified record into HubSpot properties: every mapped property (`""`
    /// where the record has no value) plus the record's custom properties. Fields the mapping
    /// does not declare (associations such as `company_id`) are ignored.
    pub async fn to_hubspot(
        &self,
        ty: ObjectType,
        fields: &FieldMap,
    ) -> Result<Properties, MappingError> {
        single(self.to_hubspot_batch(ty, vec![fields.clone()]).await?)
    }

    /// Translates many unified records in one round trip; one result per record, in order.
    pub async fn to_hubspot_batch(
        &self,
        ty: ObjectType,
        records: Vec<FieldMap>,
    ) -> Result<Vec<Result<Properties, MappingError>>, MappingError> {
        let (reply, answer) = oneshot::channel();
        self.pool.submit(Job::ToHubspot { ty, records, reply })?;
        answer.await.map_err(|_| MappingError::PoolClosed)
    }

    /// Validates a unified record and brings it to canonical form (the form `to_unified`
    /// produces), so that app rows and HubSpot records fingerprint alike. Runs inline: it is
    /// plain Rust, no JSONata.
    pub fn normalize(&self, ty: ObjectType, fields: &FieldMap) -> Result<FieldMap, MappingError> {
        translate::normalize(&self.catalog.object(ty).spec, fields)
    }

    /// The HubSpot properties the mapped fields are made from, sorted: request these in reads
    /// (custom properties come from the configured list).
    pub fn synced_properties(&self, ty: ObjectType) -> &[String] {
        &self.catalog.object(ty).synced
    }

    /// The unified fields the mapping produces, sorted (the synced columns of the app table,
    /// besides `custom_fields`).
    pub fn mapped_fields(&self, ty: ObjectType) -> Vec<&str> {
        let spec = &self.catalog.object(ty).spec;
        spec.fields
            .iter()
            .filter(|(_, f)| f.mapped)
            .map(|(n, _)| n.as_str())
            .collect()
    }

    /// The declared unified fields of an object type (types, properties, filter rules), e.g.
    /// to validate API input or describe it in an OpenAPI document.
    pub fn field_specs(&self, ty: ObjectType) -> &BTreeMap<String, spec::FieldSpec> {
        &self.catalog.object(ty).spec.fields
    }

    /// Whether HubSpot computes `property` itself (it never becomes a custom field).
    pub fn is_reserved(&self, ty: ObjectType, property: &str) -> bool {
        self.catalog.object(ty).spec.is_reserved(property)
    }

    /// The filter rules of an object type.
    pub fn filter_rules(&self, ty: ObjectType) -> &FilterRules {
        &self.catalog.object(ty).filters
    }
}

/// A value error found while checking a mapping at load time is the mapping's fault: name the
/// file it came from.
fn in_file(file: &str, error: MappingError) -> MappingError {
    match error {
        MappingError::InvalidValue { .. } => MappingError::Output {
            file: file.to_owned(),
            reason: error.to_string(),
        },
        other => other,
    }
}

fn single<T>(mut results: Vec<Result<T, MappingError>>) -> Result<T, MappingError> {
    results.pop().unwrap_or(Err(MappingError::PoolClosed))
}

/// Reads `name` from `dir` when it is there, else the embedded default.
fn read(dir: Option<&Path>, name: &str) -> Result<Source, MappingError> {
    if let Some(dir) = dir {
        let path = dir.join(name);
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                tracing::info!(file = %path.display(), "using mapping override");
                return Ok(Source {
                    name: path.display().to_string(),
                    text,
                });
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => return Err(MappingError::Io { path, source }),
        }
    }
    EMBEDDED
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(n, text)| Source {
            name: (*n).to_owned(),
            text: (*text).to_owned(),
        })
        .ok_or_else(|| MappingError::Io {
            path: PathBuf::from(name),
            source: std::io::Error::new(std::io::ErrorKind::NotFound, "no such mapping file"),
        })
}
