//! Webhook event payloads and the tolerant delivery parser.

use std::fmt;

use hubsync_core::{AppId, HubspotId, ObjectType, PortalId};
use serde::{Deserialize, Serialize};

/// What happened to the object, from the second half of `subscriptionType`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum EventKind {
    /// `*.creation`
    Creation,
    /// `*.deletion`
    Deletion,
    /// `*.propertyChange`
    PropertyChange,
    /// `*.merge`
    Merge,
    /// `*.restore`
    Restore,
    /// `*.associationChange`
    AssociationChange,
    /// Any subscription type hubsync does not handle (tickets, conversations,
    /// `contact.privacyDeletion`, future types), carrying the whole subscription type.
    Unknown(String),
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            EventKind::Creation => "creation",
            EventKind::Deletion => "deletion",
            EventKind::PropertyChange => "propertyChange",
            EventKind::Merge => "merge",
            EventKind::Restore => "restore",
            EventKind::AssociationChange => "associationChange",
            EventKind::Unknown(s) => s,
        })
    }
}

/// Parses a subscription type (`contact.propertyChange`, or generic `object.creation` with
/// its `objectTypeId`) into the object type and the event kind. Anything hubsync does not
/// sync gives `(None, EventKind::Unknown(..))`.
pub fn parse_subscription_type(
    subscription_type: &str,
    object_type_id: Option<&str>,
) -> (Option<ObjectType>, EventKind) {
    let unknown = || (None, EventKind::Unknown(subscription_type.to_owned()));
    let Some((object, kind)) = subscription_type.split_once('.') else {
        return unknown();
    };
    let object_type = if object == "object" {
        object_type_id.and_then(|id| id.parse::<ObjectType>().ok())
    } else {
        // Only the singular names HubSpot uses in subscription types.
        match object {
            "contact" => Some(ObjectType::Contacts),
            "company" => Some(ObjectType::Companies),
            "deal" => Some(ObjectType::Deals),
            _ => None,
        }
    };
    let kind = match kind {
        "creation" => EventKind::Creation,
        "deletion" => EventKind::Deletion,
        "propertyChange" => EventKind::PropertyChange,
        "merge" => EventKind::Merge,
        "restore" => EventKind::Restore,
        "associationChange" => EventKind::AssociationChange,
        _ => return unknown(),
    };
    match object_type {
        Some(t) => (Some(t), kind),
        None => unknown(),
    }
}

/// One event of a webhook delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookEvent {
    /// HubSpot's event id. Not unique on its own: see [`WebhookEvent::identity`].
    pub event_id: u64,
    /// The subscription that fired.
    pub subscription_id: u64,
    /// The customer's HubSpot account.
    pub portal_id: PortalId,
    /// The app the subscription belongs to.
    pub app_id: Option<AppId>,
    /// When the change happened, epoch milliseconds.
    pub occurred_at: i64,
    /// The raw subscription type (`contact.propertyChange`).
    pub subscription_type: String,
    /// The synced object type, `None` for types hubsync does not sync.
    pub object_type: Option<ObjectType>,
    /// What happened.
    pub kind: EventKind,
    /// Delivery attempt, from 0.
    pub attempt_number: u32,
    /// The record the event is about.
    pub object_id: Option<HubspotId>,
    /// propertyChange: the property that changed.
    pub property_name: Option<String>,
    /// propertyChange: its new value.
    pub property_value: Option<String>,
    /// Where the change came from (`CRM_UI`, `API`, `INTEGRATION`, `IMPORT`, ...).
    pub change_source: Option<String>,
    /// Who made it (`userId:123`, or the writing app's id for `INTEGRATION`).
    pub source_id: Option<String>,
    /// `CREATED`/`NEW` on creation, `DELETED` on deletion.
    pub change_flag: Option<String>,
    /// merge: the record chosen as primary.
    pub primary_object_id: Option<HubspotId>,
    /// merge: the records merged away.
    pub merged_object_ids: Vec<HubspotId>,
    /// merge: the id of the merged record, which can differ from `primary_object_id`.
    pub new_object_id: Option<HubspotId>,
    /// merge: how many properties moved.
    pub number_of_properties_moved: Option<u64>,
    /// associationChange: e.g. `CONTACT_TO_COMPANY`.
    pub association_type: Option<String>,
    /// associationChange: source record.
    pub from_object_id: Option<HubspotId>,
    /// associationChange: target record.
    pub to_object_id: Option<HubspotId>,
    /// associationChange: `true` when the association was removed.
    pub association_removed: Option<bool>,
    /// associationChange: whether it is the primary association.
    pub is_primary_association: Option<bool>,
}

/// The identity HubSpot's retries and duplicates share: eventId alone is not unique.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct EventIdentity {
    /// The subscription that fired.
    pub subscription_id: u64,
    /// The record (0 when the event names none).
    pub object_id: u64,
    /// The property (empty when none).
    pub property_name: String,
    /// When it happened, epoch ms.
    pub occurred_at: i64,
    /// HubSpot's event id.
    pub event_id: u64,
}

impl WebhookEvent {
    /// The key a durable inbox deduplicates on: subscription, object, property, occurredAt,
    /// eventId. Redeliveries (`attemptNumber` > 0) share it.
    pub fn identity(&self) -> EventIdentity {
        EventIdentity {
            subscription_id: self.subscription_id,
            object_id: self.object_id.map_or(0, HubspotId::get),
            property_name: self.property_name.clone().unwrap_or_default(),
            occurred_at: self.occurred_at,
            event_id: self.event_id,
        }
    }

    /// Whether the change was written by the given app through the API (HubSpot reports
    /// `changeSource: INTEGRATION` with `sourceId` = the app id). Observed, not documented.
    pub fn is_from_app(&self, app: AppId) -> bool {
        self.change_source.as_deref() == Some("INTEGRATION")
            && self
                .source_id
                .as_deref()
                .is_some_and(|s| s.trim() == app.to_string())
    }

    /// Whether hubsync handles this event (a synced object type and a known kind).
    pub fn is_known(&self) -> bool {
        !matches!(self.kind, EventKind::Unknown(_))
    }
}

/// A delivery body that is not a JSON array of events.
#[derive(Debug, thiserror::Error)]
#[error("malformed webhook delivery: {0}")]
pub struct DeliveryError(#[from] serde_json::Error);

/// Parses a delivery body: a JSON array of events. Unknown subscription types become
/// [`EventKind::Unknown`]; a body that is not an array of events with the identity fields
/// (eventId, subscriptionId, portalId, occurredAt, subscriptionType) is an error.
pub fn parse_delivery(body: &[u8]) -> Result<Vec<WebhookEvent>, DeliveryError> {
    let raw: Vec<RawEvent> = serde_json::from_slice(body)?;
    Ok(raw.into_iter().map(RawEvent::into_event).collect())
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawEvent {
    event_id: u64,
    subscription_id: u64,
    portal_id: PortalId,
    #[serde(default)]
    app_id: Option<u64>,
    occurred_at: i64,
    #[serde(alias = "eventType")]
    subscription_type: String,
    #[serde(default)]
    attempt_number: u32,
    #[serde(default)]
    object_id: Option<Id>,
    #[serde(default)]
    object_type_id: Option<String>,
    #[serde(default)]
    property_name: Option<String>,
    #[serde(default)]
    property_value: Option<Scalar>,
    #[serde(default)]
    change_source: Option<String>,
    #[serde(default)]
    source_id: Option<Scalar>,
    #[serde(default)]
    change_flag: Option<String>,
    #[serde(default)]
    primary_object_id: Option<Id>,
    #[serde(default)]
    merged_object_ids: Vec<Id>,
    #[serde(default)]
    new_object_id: Option<Id>,
    #[serde(default)]
    number_of_properties_moved: Option<u64>,
    #[serde(default)]
    association_type: Option<String>,
    #[serde(default)]
    from_object_id: Option<Id>,
    #[serde(default)]
    to_object_id: Option<Id>,
    #[serde(default)]
    association_removed: Option<bool>,
    #[serde(default)]
    is_primary_association: Option<bool>,
}

/// A record id as a number or a numeric string; 0 or garbage means "none" rather than a
/// rejected delivery.
#[derive(Deserialize)]
#[serde(untagged)]
enum Id {
    Number(u64),
    Text(String),
    Other(serde::de::IgnoredAny),
}

impl Id {
    fn get(self) -> Option<HubspotId> {
        match self {
            Id::Number(n) => (n > 0).then_some(HubspotId(n)),
            Id::Text(s) => s.parse().ok(),
            Id::Other(_) => None,
        }
    }
}

/// A value HubSpot documents as a string but that is safest read as any scalar.
#[derive(Deserialize)]
#[serde(untagged)]
enum Scalar {
    Text(String),
    Other(serde_json::Value),
}

impl Scalar {
    fn into_string(self) -> Option<String> {
        match self {
            Scalar::Text(s) => Some(s),
            Scalar::Other(serde_json::Value::Null) => None,
            Scalar::Other(v) => Some(v.to_string()),
        }
    }
}

impl RawEvent {
    fn into_event(self) -> WebhookEvent {
        let (object_type, kind) =
            parse_subscription_type(&self.subscription_type, self.object_type_id.as_deref());
        WebhookEvent {
            event_id: self.event_id,
            subscription_id: self.subscription_id,
            portal_id: self.portal_id,
            app_id: self.app_id.filter(|a| *a > 0).map(AppId),
            occurred_at: self.occurred_at,
            subscription_type: self.subscription_type,
            object_type,
            kind,
            attempt_number: self.attempt_number,
            object_id: self.object_id.and_then(Id::get),
            property_name: self.property_name,
            property_value: self.property_value.and_then(Scalar::into_string),
            change_source: self.change_source,
            source_id: self.source_id.and_then(Scalar::into_string),
            change_flag: self.change_flag,
            primary_object_id: self.primary_object_id.and_then(Id::get),
            merged_object_ids: self
                .merged_object_ids
                .into_iter()
                .filter_map(Id::get)
                .collect(),
            new_object_id: self.new_object_id.and_then(Id::get),
            number_of_properties_moved: self.number_of_properties_moved,
            association_type: self.association_type,
            from_object_id: self.from_object_id.and_then(Id::get),
            to_object_id: self.to_object_id.and_then(Id::get),
            association_removed: self.association_removed,
            is_primary_association: self.is_primary_association,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integration_write_event_parses_and_is_recognised_as_our_echo() {
        let body = br#"[{"eventId":4101286121,"subscriptionId":7562680,"portalId":247187887,"appId":50780459,
  "occurredAt":1787843156000,"subscriptionType":"contact.propertyChange","attemptNumber":1,
  "objectId":541935488729,"propertyName":"email","propertyValue":"emailmaria+webhook-test-2@hubspot.com",
  "changeSource":"INTEGRATION","sourceId":"50780459"}]"#;
        let events = parse_delivery(body).unwrap();
        assert_eq!(events.len(), 1);
        let e = &events[0];
        assert_eq!(e.object_type, Some(ObjectType::Contacts));
        assert_eq!(e.kind, EventKind::PropertyChange);
        assert_eq!(e.portal_id, PortalId(247187887));
        assert_eq!(e.object_id, Some(HubspotId(541935488729)));
        assert_eq!(
            e.property_value.as_deref(),
            Some("emailmaria+webhook-test-2@hubspot.com")
        );
        assert!(e.is_from_app(AppId(50780459)));
        assert!(!e.is_from_app(AppId(1)));
    }

    #[test]
    fn merge_and_association_fields_are_read() {
        let body = br#"[
 {"eventId":1,"subscriptionId":2,"portalId":3,"appId":4,"occurredAt":5,"subscriptionType":"company.merge",
  "attemptNumber":0,"objectId":10,"primaryObjectId":10,"mergedObjectIds":[11,"12"],"newObjectId":13,"numberOfPropertiesMoved":7},
 {"eventId":6,"subscriptionId":7,"portalId":3,"appId":4,"occurredAt":8,"subscriptionType":"contact.associationChange",
  "attemptNumber":0,"associationType":"CONTACT_TO_COMPANY","fromObjectId":20,"toObjectId":21,
  "associationRemoved":false,"isPrimaryAssociation":true}]"#;
        let events = parse_delivery(body).unwrap();
        let merge = &events[0];
        assert_eq!(
            (merge.object_type, &merge.kind),
            (Some(ObjectType::Companies), &EventKind::Merge)
        );
        assert_eq!(merge.merged_object_ids, vec![HubspotId(11), HubspotId(12)]);
        assert_eq!(merge.new_object_id, Some(HubspotId(13)));
        let assoc = &events[1];
        assert_eq!(assoc.kind, EventKind::AssociationChange);
        assert_eq!(assoc.from_object_id, Some(HubspotId(20)));
        assert_eq!(assoc.is_primary_association, Some(true));
    }

    #[test]
    fn unknown_subscription_types_are_kept_not_rejected() {
        let body = br#"[
 {"eventId":1,"subscriptionId":2,"portalId":3,"occurredAt":5,"subscriptionType":"ticket.creation","objectId":9},
 {"eventId":1,"subscriptionId":2,"portalId":3,"occurredAt":5,"subscriptionType":"contact.privacyDeletion","objectId":9},
 {"eventId":1,"subscriptionId":2,"portalId":3,"occurredAt":5,"subscriptionType":"conversation.newMessage","messageId":"x"},
 {"eventId":1,"subscriptionId":2,"portalId":3,"occurredAt":5,"subscriptionType":"object.creation","objectTypeId":"0-3","objectId":9}]"#;
        let events = parse_delivery(body).unwrap();
        assert_eq!(events[0].kind, EventKind::Unknown("ticket.creation".into()));
        assert_eq!(events[0].object_type, None);
        assert_eq!(
            events[1].kind,
            EventKind::Unknown("contact.privacyDeletion".into())
        );
        assert!(!events[2].is_known());
        assert_eq!(
            (events[3].object_type, &events[3].kind),
            (Some(ObjectType::Deals), &EventKind::Creation)
        );
    }

    #[test]
    fn malformed_bodies_are_errors() {
        assert!(parse_delivery(b"{not json").is_err());
        assert!(
            parse_delivery(br#"{"eventId":1}"#).is_err(),
            "an object, not an array"
        );
        assert!(
            parse_delivery(br#"[{"eventId":1,"subscriptionId":2}]"#).is_err(),
            "no portalId"
        );
        assert!(parse_delivery(b"[]").unwrap().is_empty());
    }

    #[test]
    fn retries_share_an_identity_and_different_properties_do_not() {
        let body = br#"[
 {"eventId":1,"subscriptionId":2,"portalId":3,"occurredAt":5,"subscriptionType":"contact.propertyChange","attemptNumber":0,"objectId":9,"propertyName":"email","propertyValue":"a"},
 {"eventId":1,"subscriptionId":2,"portalId":3,"occurredAt":5,"subscriptionType":"contact.propertyChange","attemptNumber":3,"objectId":9,"propertyName":"email","propertyValue":"a"},
 {"eventId":1,"subscriptionId":2,"portalId":3,"occurredAt":5,"subscriptionType":"contact.propertyChange","attemptNumber":0,"objectId":9,"propertyName":"phone","propertyValue":"1"}]"#;
        let events = parse_delivery(body).unwrap();
        assert_eq!(events[0].identity(), events[1].identity());
        assert_ne!(events[0].identity(), events[2].identity());
    }

    #[test]
    fn legacy_event_type_field_name_is_accepted() {
        let body = br#"[{"eventId":1,"subscriptionId":2,"portalId":3,"occurredAt":5,"eventType":"deal.deletion","objectId":"44","changeFlag":"DELETED"}]"#;
        let events = parse_delivery(body).unwrap();
        assert_eq!(events[0].kind, EventKind::Deletion);
        assert_eq!(events[0].object_id, Some(HubspotId(44)));
    }
}
