//! The typed CRM v3/v4 endpoints, as methods on [`PortalClient`]. Search goes through the
//! search lane; everything else through the general lane.

use std::collections::BTreeMap;

use hubsync_core::{HubspotId, ObjectType};
use reqwest::Method;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::ApiError;
use crate::lanes::LaneKind;
use crate::model::{
    AssociationArchive, AssociationCreate, AssociationLabels, AssociationRead, BatchReadBody,
    BatchReadRequest, BatchResponse, CreateInput, Filter, FilterGroup, HUBSYNC_ID_PROPERTY,
    HUBSYNC_ORIGIN_PROPERTY, HubspotObject, IdInput, IdRef, Inputs, ListParams, MAX_BATCH_INPUTS,
    MAX_LIST_LIMIT, MAX_SEARCH_LIMIT, ObjectKey, Page, PropertyCreate, PropertyDefinition,
    RawAssociationArchive, RawAssociationCreate, RawAssociationRead, RawBatch, RawCollection,
    SearchPage, SearchRequest, UpdateInput, UpsertInput, UpsertedObject,
};
use crate::portal::{PortalClient, Reply, Request};

const OBJECTS: &str = "crm/v3/objects";
const PROPERTIES: &str = "crm/v3/properties";
const ASSOCIATIONS: &str = "crm/v4/associations";
/// Values per `IN` filter in [`PortalClient::search_by_values`] (HubSpot documents no limit;
/// this keeps request bodies small).
pub const MAX_IN_VALUES: usize = 100;
/// Inputs per v4 association batch read.
const MAX_ASSOCIATION_READ_INPUTS: usize = 1000;
/// Inputs per v4 association batch create.
const MAX_ASSOCIATION_CREATE_INPUTS: usize = 2000;

/// What [`PortalClient::ensure_hubsync_properties`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PropertySetup {
    /// Properties created now.
    pub created: Vec<String>,
    /// Properties that already existed.
    pub existing: Vec<String>,
}

fn check_batch(len: usize, max: usize, what: &str) -> Result<(), ApiError> {
    if len == 0 {
        return Err(ApiError::InvalidRequest(format!("{what}: no inputs")));
    }
    if len > max {
        return Err(ApiError::InvalidRequest(format!(
            "{what}: {len} inputs, at most {max} per request"
        )));
    }
    Ok(())
}

fn decode<T: DeserializeOwned>(reply: &Reply, what: &'static str) -> Result<T, ApiError> {
    serde_json::from_slice(&reply.body).map_err(|source| ApiError::Decode { what, source })
}

fn json<T: Serialize>(value: &T) -> Result<Vec<u8>, ApiError> {
    serde_json::to_vec(value)
        .map_err(|e| ApiError::InvalidRequest(format!("request body cannot be encoded: {e}")))
}

fn property_group(object_type: ObjectType) -> &'static str {
    match object_type {
        ObjectType::Contacts => "contactinformation",
        ObjectType::Companies => "companyinformation",
        ObjectType::Deals => "dealinformation",
    }
}

impl PortalClient {
    fn request(
        &self,
        method: Method,
        fixed: &str,
        segments: &[&str],
        lane: LaneKind,
    ) -> Result<Request, ApiError> {
        Ok(Request {
            method,
            url: self.shared.url(fixed, segments)?,
            query: Vec::new(),
            body: None,
            lane,
        })
    }

    async fn batch<T: DeserializeOwned>(
        &self,
        request: Request,
        what: &'static str,
    ) -> Result<BatchResponse<T>, ApiError> {
        let reply = self.execute(&request).await?;
        let raw: RawBatch<T> = decode(&reply, what)?;
        Ok(raw.into_response(reply.status.as_u16()))
    }

    /// One page of records (`GET /crm/v3/objects/{type}`).
    pub async fn list_page(
        &self,
        object_type: ObjectType,
        params: &ListParams,
    ) -> Result<Page<HubspotObject>, ApiError> {
        let mut request = self.request(
            Method::GET,
            OBJECTS,
            &[object_type.plural()],
            LaneKind::General,
        )?;
        if let Some(limit) = params.limit {
            if limit == 0 || limit > MAX_LIST_LIMIT {
                return Err(ApiError::InvalidRequest(format!(
                    "list limit {limit} outside 1..={MAX_LIST_LIMIT}"
                )));
            }
            request.query.push(("limit", limit.to_string()));
        }
        if let Some(after) = &params.after {
            request.query.push(("after", after.clone()));
        }
        if !params.properties.is_empty() {
            request
                .query
                .push(("properties", params.properties.join(",")));
        }
        request
            .query
            .push(("archived", params.archived.to_string()));
        let reply = self.execute(&request).await?;
        let raw: RawCollection<HubspotObject> = decode(&reply, "object list page")?;
        let next_after = raw.next_after();
        Ok(Page {
            results: raw.results,
            next_after,
        })
    }

    /// One record by id or unique property (`GET /crm/v3/objects/{type}/{id}`).
    /// A missing record is [`ApiError::NotFound`].
    pub async fn get(
        &self,
        object_type: ObjectType,
        key: &ObjectKey,
        properties: &[String],
        archived: bool,
    ) -> Result<HubspotObject, ApiError> {
        let id_text;
        let (segment, id_property) = match key {
            ObjectKey::Id(id) => {
                id_text = id.to_string();
                (id_text.as_str(), None)
            }
            ObjectKey::Unique { property, value } => (value.as_str(), Some(property.as_str())),
        };
        let mut request = self.request(
            Method::GET,
            OBJECTS,
            &[object_type.plural(), segment],
            LaneKind::General,
        )?;
        if !properties.is_empty() {
            request.query.push(("properties", properties.join(",")));
        }
        if let Some(p) = id_property {
            request.query.push(("idProperty", p.to_owned()));
        }
        request.query.push(("archived", archived.to_string()));
        let reply = self.execute(&request).await?;
        decode(&reply, "object")
    }

    /// Updates one record (`PATCH /crm/v3/objects/{type}/{id}`). Unlike batch update, this
    /// accepts ids merged away into another record (`hs_merged_object_ids`).
    pub async fn update(
        &self,
        object_type: ObjectType,
        key: &ObjectKey,
        properties: &BTreeMap<String, String>,
    ) -> Result<HubspotObject, ApiError> {
        #[derive(Serialize)]
        struct PatchBody<'a> {
            properties: &'a BTreeMap<String, String>,
        }
        let id_text;
        let (segment, id_property) = match key {
            ObjectKey::Id(id) => {
                id_text = id.to_string();
                (id_text.as_str(), None)
            }
            ObjectKey::Unique { property, value } => (value.as_str(), Some(property.as_str())),
        };
        let mut request = self.request(
            Method::PATCH,
            OBJECTS,
            &[object_type.plural(), segment],
            LaneKind::General,
        )?;
        if let Some(p) = id_property {
            request.query.push(("idProperty", p.to_owned()));
        }
        request.body = Some(json(&PatchBody { properties })?);
        let reply = self.execute(&request).await?;
        decode(&reply, "updated object")
    }

    /// Reads up to 100 records (`POST .../batch/read`); ids that do not exist come back as
    /// per-input errors (207), not as a failure.
    pub async fn batch_read(
        &self,
        object_type: ObjectType,
        read: &BatchReadRequest,
    ) -> Result<BatchResponse<HubspotObject>, ApiError> {
        check_batch(read.ids.len(), MAX_BATCH_INPUTS, "batch read")?;
        let mut request = self.request(
            Method::POST,
            OBJECTS,
            &[object_type.plural(), "batch", "read"],
            LaneKind::General,
        )?;
        request.query.push(("archived", read.archived.to_string()));
        request.body = Some(json(&BatchReadBody {
            properties: &read.properties,
            id_property: read.id_property.as_deref(),
            inputs: read.ids.iter().map(|id| IdInput { id }).collect(),
        })?);
        self.batch(request, "batch read response").await
    }

    /// Creates up to 100 records (`POST .../batch/create`). Give every input a unique
    /// `object_write_trace_id` to get per-input errors (207) instead of an all-or-nothing
    /// failure. A duplicate contact email fails the whole batch with [`ApiError::Conflict`].
    pub async fn batch_create(
        &self,
        object_type: ObjectType,
        inputs: &[CreateInput],
    ) -> Result<BatchResponse<HubspotObject>, ApiError> {
        check_batch(inputs.len(), MAX_BATCH_INPUTS, "batch create")?;
        let mut request = self.request(
            Method::POST,
            OBJECTS,
            &[object_type.plural(), "batch", "create"],
            LaneKind::General,
        )?;
        request.body = Some(json(&Inputs { inputs })?);
        self.batch(request, "batch create response").await
    }

    /// Updates up to 100 records (`POST .../batch/update`). Merged-away ids are not accepted
    /// here (use the survivor's id).
    pub async fn batch_update(
        &self,
        object_type: ObjectType,
        inputs: &[UpdateInput],
    ) -> Result<BatchResponse<HubspotObject>, ApiError> {
        check_batch(inputs.len(), MAX_BATCH_INPUTS, "batch update")?;
        let mut request = self.request(
            Method::POST,
            OBJECTS,
            &[object_type.plural(), "batch", "update"],
            LaneKind::General,
        )?;
        request.body = Some(json(&Inputs { inputs })?);
        self.batch(request, "batch update response").await
    }

    /// Creates or updates up to 100 records by a unique property (`POST .../batch/upsert`);
    /// each result says whether it was `new`. Idempotent: hubsync's creates go through here.
    pub async fn batch_upsert(
        &self,
        object_type: ObjectType,
        inputs: &[UpsertInput],
    ) -> Result<BatchResponse<UpsertedObject>, ApiError> {
        check_batch(inputs.len(), MAX_BATCH_INPUTS, "batch upsert")?;
        let mut request = self.request(
            Method::POST,
            OBJECTS,
            &[object_type.plural(), "batch", "upsert"],
            LaneKind::General,
        )?;
        request.body = Some(json(&Inputs { inputs })?);
        self.batch(request, "batch upsert response").await
    }

    /// Archives up to 100 records (`POST .../batch/archive`, 204).
    pub async fn batch_archive(
        &self,
        object_type: ObjectType,
        ids: &[HubspotId],
    ) -> Result<(), ApiError> {
        check_batch(ids.len(), MAX_BATCH_INPUTS, "batch archive")?;
        let mut request = self.request(
            Method::POST,
            OBJECTS,
            &[object_type.plural(), "batch", "archive"],
            LaneKind::General,
        )?;
        let inputs: Vec<IdRef> = ids.iter().map(|id| IdRef { id: *id }).collect();
        request.body = Some(json(&Inputs { inputs })?);
        self.execute(&request).await.map(drop)
    }

    /// Searches (`POST .../search`) on the search lane (5/s), never on the general lane.
    /// Search is eventually consistent and excludes archived records.
    pub async fn search(
        &self,
        object_type: ObjectType,
        search: &SearchRequest,
    ) -> Result<SearchPage, ApiError> {
        search.validate().map_err(ApiError::InvalidRequest)?;
        let mut request = self.request(
            Method::POST,
            OBJECTS,
            &[object_type.plural(), "search"],
            LaneKind::Search,
        )?;
        request.body = Some(json(search)?);
        let reply = self.execute(&request).await?;
        let raw: RawCollection<HubspotObject> = decode(&reply, "search page")?;
        let next_after = raw.next_after();
        Ok(SearchPage {
            total: raw.total.unwrap_or(raw.results.len() as u64),
            results: raw.results,
            next_after,
        })
    }

    /// Finds the records whose `property` has one of `values` (e.g. contacts by email before
    /// a create that cannot use the unique-id path): `IN` filters of at most
    /// [`MAX_IN_VALUES`] lower-cased values per request, every page read, all on the search
    /// lane. Search lags writes by a few seconds; a record created moments ago may be missing.
    pub async fn search_by_values(
        &self,
        object_type: ObjectType,
        property: &str,
        values: &[String],
        properties: &[String],
    ) -> Result<Vec<HubspotObject>, ApiError> {
        let mut found = Vec::new();
        for chunk in values.chunks(MAX_IN_VALUES) {
            let mut request = SearchRequest {
                filter_groups: vec![FilterGroup {
                    filters: vec![Filter::in_values(
                        property,
                        chunk.iter().map(|v| v.to_lowercase()),
                    )],
                }],
                properties: properties.to_vec(),
                limit: MAX_SEARCH_LIMIT,
                ..SearchRequest::default()
            };
            loop {
                let page = self.search(object_type, &request).await?;
                found.extend(page.results);
                match page.next_after {
                    Some(after) => request.after = Some(after),
                    None => break,
                }
            }
        }
        Ok(found)
    }

    /// Merges `to_merge` into `primary` (`POST .../merge`). The result may carry a new id;
    /// both old ids then resolve to it.
    pub async fn merge(
        &self,
        object_type: ObjectType,
        primary: HubspotId,
        to_merge: HubspotId,
    ) -> Result<HubspotObject, ApiError> {
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct MergeBody {
            primary_object_id: String,
            object_id_to_merge: String,
        }
        let mut request = self.request(
            Method::POST,
            OBJECTS,
            &[object_type.plural(), "merge"],
            LaneKind::General,
        )?;
        request.body = Some(json(&MergeBody {
            primary_object_id: primary.to_string(),
            object_id_to_merge: to_merge.to_string(),
        })?);
        let reply = self.execute(&request).await?;
        decode(&reply, "merged object")
    }

    /// Every property of an object type (`GET /crm/v3/properties/{type}`).
    pub async fn list_properties(
        &self,
        object_type: ObjectType,
    ) -> Result<Vec<PropertyDefinition>, ApiError> {
        let request = self.request(
            Method::GET,
            PROPERTIES,
            &[object_type.plural()],
            LaneKind::General,
        )?;
        let reply = self.execute(&request).await?;
        let raw: RawCollection<PropertyDefinition> = decode(&reply, "property list")?;
        Ok(raw.results)
    }

    /// Creates a property (`POST /crm/v3/properties/{type}`, 201). An existing name is
    /// [`ApiError::Conflict`].
    pub async fn create_property(
        &self,
        object_type: ObjectType,
        property: &PropertyCreate,
    ) -> Result<PropertyDefinition, ApiError> {
        let mut request = self.request(
            Method::POST,
            PROPERTIES,
            &[object_type.plural()],
            LaneKind::General,
        )?;
        request.body = Some(json(property)?);
        let reply = self.execute(&request).await?;
        decode(&reply, "created property")
    }

    /// Portal set-up: makes sure the object type has hubsync's unique `hubsync_id` string
    /// property (the upsert key) and the `hubsync_origin` string property (the echo marker).
    /// Idempotent.
    pub async fn ensure_hubsync_properties(
        &self,
        object_type: ObjectType,
    ) -> Result<PropertySetup, ApiError> {
        let existing = self.list_properties(object_type).await?;
        let mut setup = PropertySetup::default();
        let wanted = [
            (
                HUBSYNC_ID_PROPERTY,
                "hubsync ID",
                "Unique id of the record in the application synced by hubsync.",
                true,
            ),
            (
                HUBSYNC_ORIGIN_PROPERTY,
                "hubsync origin",
                "Marker of the last write made by hubsync (echo suppression).",
                false,
            ),
        ];
        for (name, label, description, unique) in wanted {
            if let Some(found) = existing.iter().find(|p| p.name == name) {
                if unique && !found.has_unique_value {
                    return Err(ApiError::InvalidRequest(format!(
                        "property `{name}` exists on {object_type} but is not unique; it cannot serve as the upsert key"
                    )));
                }
                setup.existing.push(name.to_owned());
                continue;
            }
            let create = PropertyCreate {
                name: name.to_owned(),
                label: label.to_owned(),
                property_type: "string".to_owned(),
                field_type: "text".to_owned(),
                group_name: property_group(object_type).to_owned(),
                description: Some(description.to_owned()),
                has_unique_value: unique,
            };
            match self.create_property(object_type, &create).await {
                Ok(_) => {
                    tracing::info!(portal = %self.portal_id(), object_type = %object_type, property = name, "created hubsync property");
                    setup.created.push(name.to_owned());
                }
                // Created concurrently by another process: fine.
                Err(ApiError::Conflict { .. }) => setup.existing.push(name.to_owned()),
                Err(e) => return Err(e),
            }
        }
        Ok(setup)
    }

    /// Reads the associations of up to 1,000 records to another object type
    /// (`POST /crm/v4/associations/{from}/{to}/batch/read`).
    pub async fn batch_read_associations(
        &self,
        from: ObjectType,
        to: ObjectType,
        ids: &[HubspotId],
    ) -> Result<BatchResponse<AssociationRead>, ApiError> {
        check_batch(
            ids.len(),
            MAX_ASSOCIATION_READ_INPUTS,
            "association batch read",
        )?;
        let mut request = self.request(
            Method::POST,
            ASSOCIATIONS,
            &[from.plural(), to.plural(), "batch", "read"],
            LaneKind::General,
        )?;
        let inputs: Vec<IdRef> = ids.iter().map(|id| IdRef { id: *id }).collect();
        request.body = Some(json(&Inputs { inputs })?);
        let raw: BatchResponse<RawAssociationRead> = self
            .batch(request, "association batch read response")
            .await?;
        Ok(BatchResponse {
            http_status: raw.http_status,
            status: raw.status,
            results: raw
                .results
                .into_iter()
                .map(RawAssociationRead::into_read)
                .collect(),
            errors: raw.errors,
        })
    }

    /// Creates up to 2,000 associations (`POST /crm/v4/associations/{from}/{to}/batch/create`).
    pub async fn batch_create_associations(
        &self,
        from: ObjectType,
        to: ObjectType,
        inputs: &[AssociationCreate],
    ) -> Result<BatchResponse<AssociationLabels>, ApiError> {
        check_batch(
            inputs.len(),
            MAX_ASSOCIATION_CREATE_INPUTS,
            "association batch create",
        )?;
        let mut request = self.request(
            Method::POST,
            ASSOCIATIONS,
            &[from.plural(), to.plural(), "batch", "create"],
            LaneKind::General,
        )?;
        let inputs: Vec<RawAssociationCreate<'_>> = inputs
            .iter()
            .map(|a| RawAssociationCreate {
                from: IdRef { id: a.from },
                to: IdRef { id: a.to },
                types: &a.types,
            })
            .collect();
        request.body = Some(json(&Inputs { inputs })?);
        self.batch(request, "association batch create response")
            .await
    }

    /// Removes every association between each pair (`POST .../batch/archive`, 204).
    pub async fn batch_archive_associations(
        &self,
        from: ObjectType,
        to: ObjectType,
        inputs: &[AssociationArchive],
    ) -> Result<(), ApiError> {
        check_batch(
            inputs.len(),
            MAX_ASSOCIATION_CREATE_INPUTS,
            "association batch archive",
        )?;
        let mut request = self.request(
            Method::POST,
            ASSOCIATIONS,
            &[from.plural(), to.plural(), "batch", "archive"],
            LaneKind::General,
        )?;
        let inputs: Vec<RawAssociationArchive> = inputs
            .iter()
            .map(|a| RawAssociationArchive {
                from: IdRef { id: a.from },
                to: a.to.iter().map(|id| IdRef { id: *id }).collect(),
            })
            .collect();
        request.body = Some(json(&Inputs { inputs })?);
        self.execute(&request).await.map(drop)
    }
}
