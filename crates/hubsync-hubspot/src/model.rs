//! Request and response types of the CRM v3/v4 endpoints, as HubSpot writes them on the wire.

use std::collections::BTreeMap;

use hubsync_core::HubspotId;
use serde::{Deserialize, Deserializer, Serialize};
use time::OffsetDateTime;

use crate::error::HubspotError;

/// The hubsync-owned unique property every synced object type gets at portal set-up; creates
/// are upserts on it, so a retried create never makes a second record.
pub const HUBSYNC_ID_PROPERTY: &str = "hubsync_id";
/// The origin marker property every hubsync write stamps, so the echo can be recognised.
pub const HUBSYNC_ORIGIN_PROPERTY: &str = "hubsync_origin";
/// Inputs per batch request (read, create, update, upsert, archive).
pub const MAX_BATCH_INPUTS: usize = 100;
/// Records per list page.
pub const MAX_LIST_LIMIT: u32 = 100;
/// Records per search page.
pub const MAX_SEARCH_LIMIT: u32 = 200;

/// A CRM record (`SimplePublicObject`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HubspotObject {
    /// The record id.
    pub id: HubspotId,
    /// Property values; `None` for a property that exists but has no value.
    #[serde(default, deserialize_with = "de_properties")]
    pub properties: BTreeMap<String, Option<String>>,
    /// Creation time.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// Last modification time.
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
    /// Whether the record is in the recycle bin.
    #[serde(default)]
    pub archived: bool,
    /// When it was archived.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub archived_at: Option<OffsetDateTime>,
    /// The `objectWriteTraceId` of the batch input that wrote this record, when echoed.
    #[serde(default)]
    pub object_write_trace_id: Option<String>,
}

impl HubspotObject {
    /// A property's value, `None` when absent or null.
    pub fn property(&self, name: &str) -> Option<&str> {
        self.properties.get(name).and_then(|v| v.as_deref())
    }
}

/// A record returned by batch upsert, with whether it was created.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct UpsertedObject {
    /// The record.
    #[serde(flatten)]
    pub object: HubspotObject,
    /// `true` when the upsert created it.
    pub new: bool,
}

/// Property values are documented as strings or null; read stray scalars as text.
fn de_properties<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<BTreeMap<String, Option<String>>, D::Error> {
    let raw: Option<BTreeMap<String, serde_json::Value>> = Option::deserialize(d)?;
    Ok(raw
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| {
            let v = match v {
                serde_json::Value::Null => None,
                serde_json::Value::String(s) => Some(s),
                other => Some(other.to_string()),
            };
            (k, v)
        })
        .collect())
}

/// One page of a list or search.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<T> {
    /// The records.
    pub results: Vec<T>,
    /// The cursor for the next page; `None` on the last page.
    pub next_after: Option<String>,
}

/// One page of a search.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchPage {
    /// Total matches (HubSpot caps paging at 10,000).
    pub total: u64,
    /// The records.
    pub results: Vec<HubspotObject>,
    /// The next offset; `None` on the last page.
    pub next_after: Option<String>,
}

#[derive(Deserialize)]
pub(crate) struct RawPaging {
    #[serde(default)]
    pub next: Option<RawNext>,
}

#[derive(Deserialize)]
pub(crate) struct RawNext {
    #[serde(default, deserialize_with = "de_cursor")]
    pub after: Option<String>,
}

/// Cursors are strings; accept numbers too.
fn de_cursor<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(match Option::<serde_json::Value>::deserialize(d)? {
        Some(serde_json::Value::String(s)) => Some(s),
        Some(serde_json::Value::Null) | None => None,
        Some(other) => Some(other.to_string()),
    })
}

#[derive(Deserialize)]
pub(crate) struct RawCollection<T> {
    #[serde(default = "Vec::new")]
    pub results: Vec<T>,
    #[serde(default)]
    pub paging: Option<RawPaging>,
    #[serde(default)]
    pub total: Option<u64>,
}

impl<T> RawCollection<T> {
    pub fn next_after(&self) -> Option<String> {
        self.paging
            .as_ref()
            .and_then(|p| p.next.as_ref())
            .and_then(|n| n.after.clone())
    }
}

/// The outcome of a batch call: a 200/201 (all succeeded) or a 207 (some inputs failed).
/// Match failures to inputs with [`BatchResponse::error_for_trace_id`] (creates) or
/// [`BatchResponse::error_for_id`] (reads, updates, upserts).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchResponse<T> {
    /// The HTTP status (200, 201 or 207).
    pub http_status: u16,
    /// `COMPLETE` in practice.
    pub status: String,
    /// The inputs that succeeded.
    pub results: Vec<T>,
    /// One entry per failure group; each names its inputs in `context`.
    pub errors: Vec<HubspotError>,
}

impl<T> BatchResponse<T> {
    /// Whether some inputs failed.
    pub fn is_partial(&self) -> bool {
        !self.errors.is_empty()
    }

    /// The error for the create input that carried this `objectWriteTraceId`.
    pub fn error_for_trace_id(&self, trace_id: &str) -> Option<&HubspotError> {
        self.errors
            .iter()
            .find(|e| e.object_write_trace_ids().iter().any(|t| t == trace_id))
    }

    /// The error naming this input id (a record id, or an `idProperty` value such as an email).
    pub fn error_for_id(&self, id: &str) -> Option<&HubspotError> {
        self.errors
            .iter()
            .find(|e| e.ids().iter().any(|i| i.eq_ignore_ascii_case(id)))
    }
}

#[derive(Deserialize)]
pub(crate) struct RawBatch<T> {
    #[serde(default)]
    pub status: String,
    #[serde(default = "Vec::new")]
    pub results: Vec<T>,
    #[serde(default)]
    pub errors: Vec<HubspotError>,
}

impl<T> RawBatch<T> {
    pub fn into_response(self, http_status: u16) -> BatchResponse<T> {
        BatchResponse {
            http_status,
            status: self.status,
            results: self.results,
            errors: self.errors,
        }
    }
}

/// Parameters of a list page.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListParams {
    /// Page size, at most 100 (HubSpot's default is 10).
    pub limit: Option<u32>,
    /// The cursor from the previous page.
    pub after: Option<String>,
    /// Properties to return (HubSpot's defaults when empty).
    pub properties: Vec<String>,
    /// `true` lists only archived records.
    pub archived: bool,
}

/// How a single record is addressed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ObjectKey {
    /// By record id.
    Id(HubspotId),
    /// By the value of a unique property (`email`, `hubsync_id`).
    Unique {
        /// The unique property.
        property: String,
        /// Its value.
        value: String,
    },
}

/// A batch read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BatchReadRequest {
    /// Record ids, or unique property values when `id_property` is set. At most 100.
    pub ids: Vec<String>,
    /// Properties to return.
    pub properties: Vec<String>,
    /// Read by this unique property instead of the record id.
    pub id_property: Option<String>,
    /// Read archived records instead of live ones.
    pub archived: bool,
}

impl BatchReadRequest {
    /// Reads these records by id.
    pub fn by_ids(ids: impl IntoIterator<Item = HubspotId>, properties: &[&str]) -> Self {
        BatchReadRequest {
            ids: ids.into_iter().map(|id| id.to_string()).collect(),
            properties: properties.iter().map(|p| (*p).to_owned()).collect(),
            ..BatchReadRequest::default()
        }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct BatchReadBody<'a> {
    pub properties: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id_property: Option<&'a str>,
    pub inputs: Vec<IdInput<'a>>,
}

#[derive(Serialize)]
pub(crate) struct IdInput<'a> {
    pub id: &'a str,
}

#[derive(Serialize)]
pub(crate) struct Inputs<T> {
    pub inputs: T,
}

/// A record to create.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateInput {
    /// Property values (`""` clears).
    pub properties: BTreeMap<String, String>,
    /// Associations to create with the record.
    pub associations: Vec<CreateAssociation>,
    /// A unique id per input: HubSpot only answers a partly failed batch create with a 207
    /// (instead of failing it whole) when every input carries one, and names failed inputs by it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub object_write_trace_id: Option<String>,
}

/// An association created together with a record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CreateAssociation {
    /// The associated record.
    pub to: IdRef,
    /// The association types.
    pub types: Vec<AssociationSpec>,
}

/// `{"id": "123"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdRef {
    /// The record id.
    pub id: HubspotId,
}

/// A record to update.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UpdateInput {
    /// The record id, or a unique property value when `id_property` is set.
    pub id: String,
    /// Property values to set (`""` clears).
    pub properties: BTreeMap<String, String>,
    /// Address the record by this unique property.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id_property: Option<String>,
    /// Optional trace id, echoed in errors.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub object_write_trace_id: Option<String>,
}

impl UpdateInput {
    /// Updates a record by id.
    pub fn by_id(id: HubspotId, properties: BTreeMap<String, String>) -> Self {
        UpdateInput {
            id: id.to_string(),
            properties,
            id_property: None,
            object_write_trace_id: None,
        }
    }
}

/// A record to create or update, addressed by a unique property.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UpsertInput {
    /// The unique property's value.
    pub id: String,
    /// The unique property (`hubsync_id`, or `email` for contacts).
    pub id_property: String,
    /// Property values to set.
    pub properties: BTreeMap<String, String>,
    /// Optional trace id, echoed in errors.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub object_write_trace_id: Option<String>,
}

impl UpsertInput {
    /// Upserts by hubsync's own unique property.
    pub fn by_hubsync_id(
        hubsync_id: impl Into<String>,
        properties: BTreeMap<String, String>,
    ) -> Self {
        UpsertInput {
            id: hubsync_id.into(),
            id_property: HUBSYNC_ID_PROPERTY.to_owned(),
            properties,
            object_write_trace_id: None,
        }
    }
}

/// A search request (`PublicObjectSearchRequest`). At most 5 filter groups, 6 filters per
/// group, 18 filters in all, one sort, a query of at most 3,000 characters and 200 per page.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SearchRequest {
    /// Groups are ORed; filters inside a group are ANDed.
    pub filter_groups: Vec<FilterGroup>,
    /// At most one sort.
    pub sorts: Vec<Sort>,
    /// Full-text query over the default searchable properties.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
    /// Properties to return.
    pub properties: Vec<String>,
    /// Page size, at most 200.
    pub limit: u32,
    /// The offset from the previous page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub after: Option<String>,
}

/// HubSpot's documented search limits (2026 docs).
pub(crate) const MAX_FILTER_GROUPS: usize = 5;
pub(crate) const MAX_FILTERS_PER_GROUP: usize = 6;
pub(crate) const MAX_FILTERS_TOTAL: usize = 18;
pub(crate) const MAX_QUERY_CHARS: usize = 3000;

impl SearchRequest {
    /// Checks the documented limits, so a request that HubSpot would reject is never sent.
    pub fn validate(&self) -> Result<(), String> {
        let total: usize = self.filter_groups.iter().map(|g| g.filters.len()).sum();
        if self.filter_groups.len() > MAX_FILTER_GROUPS {
            return Err(format!(
                "{} filter groups, at most {MAX_FILTER_GROUPS} allowed",
                self.filter_groups.len()
            ));
        }
        if let Some(g) = self
            .filter_groups
            .iter()
            .find(|g| g.filters.len() > MAX_FILTERS_PER_GROUP)
        {
            return Err(format!(
                "{} filters in one group, at most {MAX_FILTERS_PER_GROUP} allowed",
                g.filters.len()
            ));
        }
        if total > MAX_FILTERS_TOTAL {
            return Err(format!(
                "{total} filters, at most {MAX_FILTERS_TOTAL} allowed"
            ));
        }
        if self.sorts.len() > 1 {
            return Err("only one sort is allowed".to_owned());
        }
        if self
            .query
            .as_ref()
            .is_some_and(|q| q.chars().count() > MAX_QUERY_CHARS)
        {
            return Err(format!("query longer than {MAX_QUERY_CHARS} characters"));
        }
        if self.limit == 0 || self.limit > MAX_SEARCH_LIMIT {
            return Err(format!(
                "search limit {} outside 1..={MAX_SEARCH_LIMIT}",
                self.limit
            ));
        }
        Ok(())
    }
}

/// Filters ANDed together.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct FilterGroup {
    /// The filters.
    pub filters: Vec<Filter>,
}

/// One filter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Filter {
    /// The property (or `associations.{objectType}`).
    pub property_name: String,
    /// The operator.
    pub operator: FilterOperator,
    /// The value (dates as epoch-ms strings).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// Values for `IN`/`NOT_IN` (string values must be lower case).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<String>,
    /// Upper bound for `BETWEEN`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub high_value: Option<String>,
}

impl Filter {
    /// `property OP value`.
    pub fn new(
        property: impl Into<String>,
        operator: FilterOperator,
        value: impl Into<String>,
    ) -> Self {
        Filter {
            property_name: property.into(),
            operator,
            value: Some(value.into()),
            values: Vec::new(),
            high_value: None,
        }
    }

    /// `property IN values`. HubSpot requires lower-case values for string properties.
    pub fn in_values(
        property: impl Into<String>,
        values: impl IntoIterator<Item = String>,
    ) -> Self {
        Filter {
            property_name: property.into(),
            operator: FilterOperator::In,
            value: None,
            values: values.into_iter().collect(),
            high_value: None,
        }
    }
}

/// Search filter operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum FilterOperator {
    /// Equal.
    Eq,
    /// Not equal.
    Neq,
    /// Less than.
    Lt,
    /// Less or equal.
    Lte,
    /// Greater than.
    Gt,
    /// Greater or equal.
    Gte,
    /// `value..=highValue`.
    Between,
    /// One of `values`.
    In,
    /// None of `values`.
    NotIn,
    /// Has any value.
    HasProperty,
    /// Has no value.
    NotHasProperty,
    /// Token match (`*` wildcard).
    ContainsToken,
    /// No token match.
    NotContainsToken,
}

/// A sort rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Sort {
    /// The property.
    pub property_name: String,
    /// The direction.
    pub direction: SortDirection,
}

/// Sort direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum SortDirection {
    /// Smallest first.
    Ascending,
    /// Largest first.
    Descending,
}

/// A property definition (`Property`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PropertyDefinition {
    /// Internal name.
    pub name: String,
    /// Display label.
    #[serde(default)]
    pub label: String,
    /// Data type (`string`, `number`, `enumeration`, `date`, `datetime`, `bool`, ...).
    #[serde(rename = "type", default)]
    pub property_type: String,
    /// Field type (`text`, `select`, ...).
    #[serde(default)]
    pub field_type: String,
    /// Property group.
    #[serde(default)]
    pub group_name: String,
    /// Description.
    #[serde(default)]
    pub description: String,
    /// Whether values are unique (usable as `idProperty`).
    #[serde(default)]
    pub has_unique_value: bool,
    /// Whether HubSpot defines it.
    #[serde(default)]
    pub hubspot_defined: bool,
    /// Whether it is calculated.
    #[serde(default)]
    pub calculated: bool,
    /// Whether it is archived.
    #[serde(default)]
    pub archived: bool,
    /// Enumeration options.
    #[serde(default)]
    pub options: Vec<PropertyOption>,
    /// What may be changed.
    #[serde(default)]
    pub modification_metadata: Option<ModificationMetadata>,
}

impl PropertyDefinition {
    /// Whether the value is read-only (a write to it fails): never sync outward into it.
    pub fn is_read_only(&self) -> bool {
        self.calculated
            || self
                .modification_metadata
                .as_ref()
                .is_some_and(|m| m.read_only_value)
    }
}

/// An enumeration option.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PropertyOption {
    /// Label.
    #[serde(default)]
    pub label: String,
    /// Stored value.
    #[serde(default)]
    pub value: String,
    /// Hidden from forms.
    #[serde(default)]
    pub hidden: bool,
}

/// `modificationMetadata`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ModificationMetadata {
    /// Can be archived.
    #[serde(default)]
    pub archivable: bool,
    /// The definition is read-only.
    #[serde(default)]
    pub read_only_definition: bool,
    /// The value is read-only.
    #[serde(default)]
    pub read_only_value: bool,
}

/// A property to create.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PropertyCreate {
    /// Internal name.
    pub name: String,
    /// Display label.
    pub label: String,
    /// Data type.
    #[serde(rename = "type")]
    pub property_type: String,
    /// Field type.
    pub field_type: String,
    /// Property group.
    pub group_name: String,
    /// Description.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Unique values (usable as `idProperty`); cannot be changed later.
    pub has_unique_value: bool,
}

/// Association categories.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AssociationCategory {
    /// HubSpot's built-in types (279 contact→company, ...).
    HubspotDefined,
    /// Labels defined by the account.
    UserDefined,
    /// Labels defined by an integration.
    IntegratorDefined,
    /// Work associations.
    Work,
}

/// An association type to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AssociationSpec {
    /// Category.
    pub association_category: AssociationCategory,
    /// Type id (279 = contact→company unlabeled, 1 = primary company, ...).
    pub association_type_id: u32,
}

impl AssociationSpec {
    /// A HubSpot-defined type.
    pub fn hubspot_defined(type_id: u32) -> Self {
        AssociationSpec {
            association_category: AssociationCategory::HubspotDefined,
            association_type_id: type_id,
        }
    }
}

/// An association type as read back.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AssociationTypeInfo {
    /// Category.
    pub category: AssociationCategory,
    /// Type id.
    pub type_id: u32,
    /// Label (`null` for unlabeled).
    #[serde(default)]
    pub label: Option<String>,
}

/// One record's associations to another object type (v4 batch read).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssociationRead {
    /// The record read from.
    pub from: HubspotId,
    /// Its associated records.
    pub to: Vec<AssociatedRecord>,
    /// Set when there are more associations to page through.
    pub next_after: Option<String>,
}

/// One associated record.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AssociatedRecord {
    /// The associated record's id (a number on the wire).
    pub to_object_id: HubspotId,
    /// Every type linking the pair (a primary link also carries the unlabeled type).
    #[serde(default)]
    pub association_types: Vec<AssociationTypeInfo>,
}

#[derive(Deserialize)]
pub(crate) struct RawAssociationRead {
    pub from: IdRef,
    #[serde(default)]
    pub to: Vec<AssociatedRecord>,
    #[serde(default)]
    pub paging: Option<RawPaging>,
}

impl RawAssociationRead {
    pub fn into_read(self) -> AssociationRead {
        let next_after = self.paging.and_then(|p| p.next).and_then(|n| n.after);
        AssociationRead {
            from: self.from.id,
            to: self.to,
            next_after,
        }
    }
}

/// An association to create (v4 batch create).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssociationCreate {
    /// From record.
    pub from: HubspotId,
    /// To record.
    pub to: HubspotId,
    /// Types to create.
    pub types: Vec<AssociationSpec>,
}

/// Associations to remove (v4 batch archive): all types between `from` and each of `to`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssociationArchive {
    /// From record.
    pub from: HubspotId,
    /// To records.
    pub to: Vec<HubspotId>,
}

/// A created association (`LabelsBetweenObjectPair`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AssociationLabels {
    /// From object type id (`0-1`).
    #[serde(default)]
    pub from_object_type_id: String,
    /// From record.
    pub from_object_id: HubspotId,
    /// To object type id.
    #[serde(default)]
    pub to_object_type_id: String,
    /// To record.
    pub to_object_id: HubspotId,
    /// Labels of the created types.
    #[serde(default)]
    pub labels: Vec<Option<String>>,
}

#[derive(Serialize)]
pub(crate) struct RawAssociationCreate<'a> {
    pub from: IdRef,
    pub to: IdRef,
    pub types: &'a [AssociationSpec],
}

#[derive(Serialize)]
pub(crate) struct RawAssociationArchive {
    pub from: IdRef,
    pub to: Vec<IdRef>,
}

/// What an OAuth token endpoint returned.
#[derive(Deserialize)]
pub(crate) struct RawTokenResponse {
    pub access_token: String,
    #[serde(default)]
    pub refresh_token: Option<String>,
    pub expires_in: u64,
    #[serde(default)]
    pub hub_id: Option<u64>,
    #[serde(default)]
    pub scopes: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_json_from_the_docs_parses_with_null_values() {
        let o: HubspotObject = serde_json::from_str(
            r#"{"id":"33451","properties":{"createdate":"2022-06-01T14:31:48.469Z","email":"lorelai@thedragonfly.com",
            "firstname":"Lorelai","hs_object_id":"33451","lastname":null},"createdAt":"2022-06-01T14:31:48.469Z",
            "updatedAt":"2025-07-07T20:27:17.947Z","archived":false}"#,
        )
        .unwrap();
        assert_eq!(o.id, HubspotId(33451));
        assert_eq!(o.property("firstname"), Some("Lorelai"));
        assert_eq!(o.properties.get("lastname"), Some(&None));
        assert_eq!(o.property("missing"), None);
    }

    #[test]
    fn batch_207_keeps_results_and_per_input_errors() {
        let raw: RawBatch<HubspotObject> = serde_json::from_str(
            r#"{"status":"COMPLETE","results":[{"id":"1","properties":{},"createdAt":"2023-05-30T16:56:07.367Z","updatedAt":"2023-05-30T16:56:07.367Z","archived":false}],"numErrors":1,
            "errors":[{"status":"error","category":"OBJECT_NOT_FOUND","message":"Could not get some CONTACT objects, they may be deleted or not exist. Check that ids are valid.",
            "context":{"ids":["raj+3@valmi.io","raj+2@valmi.io"]}}],"startedAt":"2023-05-30T16:56:07.367Z","completedAt":"2023-05-30T16:56:07.403Z"}"#,
        )
        .unwrap();
        let batch = raw.into_response(207);
        assert!(batch.is_partial());
        assert_eq!(batch.results.len(), 1);
        assert_eq!(
            batch
                .error_for_id("RAJ+2@valmi.io")
                .map(HubspotError::category),
            Some("OBJECT_NOT_FOUND")
        );
        assert!(batch.error_for_id("raj+1@valmi.io").is_none());
    }

    #[test]
    fn upsert_results_say_whether_they_created() {
        let o: UpsertedObject = serde_json::from_str(
            r#"{"id":"7","properties":{"hubsync_id":"l-1"},"createdAt":"2024-01-17T19:55:04.281Z","updatedAt":"2024-01-17T19:55:04.281Z","archived":false,"new":true}"#,
        )
        .unwrap();
        assert!(o.new);
        assert_eq!(o.object.property(HUBSYNC_ID_PROPERTY), Some("l-1"));
    }

    #[test]
    fn create_input_serialises_to_the_documented_shape() {
        let input = CreateInput {
            properties: BTreeMap::from([("email".to_owned(), "a@b.c".to_owned())]),
            associations: vec![CreateAssociation {
                to: IdRef {
                    id: HubspotId(123456),
                },
                types: vec![AssociationSpec::hubspot_defined(279)],
            }],
            object_write_trace_id: Some("t1".to_owned()),
        };
        assert_eq!(
            serde_json::to_value(&input).unwrap(),
            serde_json::json!({"properties":{"email":"a@b.c"},"associations":[{"to":{"id":"123456"},
                "types":[{"associationCategory":"HUBSPOT_DEFINED","associationTypeId":279}]}],"objectWriteTraceId":"t1"})
        );
    }

    #[test]
    fn search_limits_are_checked_before_sending() {
        let eq = || Filter::new("email", FilterOperator::Eq, "x");
        let mut req = SearchRequest {
            limit: 200,
            ..SearchRequest::default()
        };
        assert!(req.validate().is_ok());
        req.limit = 201;
        assert!(req.validate().is_err());
        req.limit = 10;
        req.filter_groups = vec![FilterGroup {
            filters: vec![eq(); 7],
        }];
        assert!(req.validate().is_err());
        req.filter_groups = vec![
            FilterGroup {
                filters: vec![eq(); 6]
            };
            4
        ];
        assert!(req.validate().is_err(), "24 filters in total");
        req.filter_groups = vec![
            FilterGroup {
                filters: vec![eq(); 6]
            };
            3
        ];
        assert!(req.validate().is_ok());
        assert_eq!(
            serde_json::to_value(Filter::in_values("email", ["a@b.c".to_owned()])).unwrap(),
            serde_json::json!({"propertyName":"email","operator":"IN","values":["a@b.c"]})
        );
    }

    #[test]
    fn association_batch_read_accepts_numeric_ids() {
        let raw: RawAssociationRead = serde_json::from_str(
            r#"{"from":{"id":"33451"},"to":[{"toObjectId":5790939450,"associationTypes":[{"category":"HUBSPOT_DEFINED","typeId":1,"label":"Primary"},{"category":"HUBSPOT_DEFINED","typeId":279,"label":null}]}]}"#,
        )
        .unwrap();
        let read = raw.into_read();
        assert_eq!(read.from, HubspotId(33451));
        assert_eq!(read.to[0].to_object_id, HubspotId(5790939450));
        assert_eq!(read.to[0].association_types.len(), 2);
        assert_eq!(read.next_after, None);
    }
}
