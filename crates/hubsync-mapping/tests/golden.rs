//! Golden tests: each shipped mapping, both directions, on realistic HubSpot objects.

use hubsync_core::{FieldMap, Fingerprint, ObjectType};
use hubsync_mapping::{MappingError, Mappings, Properties};
use serde_json::{Value, json};

fn mappings() -> Mappings {
    Mappings::embedded().expect("shipped mappings load")
}

fn props(value: Value) -> Properties {
    serde_json::from_value(value).expect("a string map")
}

fn fields(value: Value) -> FieldMap {
    FieldMap::from_unified(&value)
}

/// A contact as `GET /crm/v3/objects/contacts/{id}?properties=…` returns it.
fn hubspot_contact() -> Value {
    json!({
        "id": "33451",
        "properties": {
            "createdate": "2022-06-01T14:31:48.469Z",
            "email": "lorelai@thedragonfly.com",
            "firstname": "Lorelai",
            "hs_object_id": "33451",
            "lastmodifieddate": "2025-07-07T20:27:17.947Z",
            "lastname": "Gilmore",
            "hs_additional_emails": "lorelai.g@stars-hollow.org;lg@independence-inn.com",
            "phone": "+1 860 555 0100",
            "mobilephone": null,
            "jobtitle": "Innkeeper",
            "hubspot_owner_id": "28604240",
            "lifecyclestage": "customer",
            "hs_all_owner_ids": "28604240",
            "hs_calculated_phone_number": "+18605550100",
            "hs_searchable_calculated_phone_number": "8605550100",
            "hs_email_domain": "thedragonfly.com",
            "hubsync_id": "0190f6a2-7c1e-7000-8000-000000000001",
            "hubsync_origin": "hubsync:write:abc",
            "arr__c": "50000",
            "favorite_drink": "coffee",
            "empty_custom": ""
        },
        "createdAt": "2022-06-01T14:31:48.469Z",
        "updatedAt": "2025-07-07T20:27:17.947Z",
        "archived": false
    })
}

fn unified_contact() -> Value {
    json!({
        "first_name": "Lorelai",
        "last_name": "Gilmore",
        "email_addresses": ["lorelai@thedragonfly.com", "lorelai.g@stars-hollow.org", "lg@independence-inn.com"],
        "phone_numbers": ["+1 860 555 0100"],
        "title": "Innkeeper",
        "owner_id": "28604240",
        "lifecycle_stage": "customer",
        "custom_fields": {"arr__c": "50000", "favorite_drink": "coffee"}
    })
}

#[tokio::test]
async fn contact_to_unified_maps_fields_and_keeps_only_real_custom_properties() {
    let m = mappings();
    let got = m
        .to_unified(ObjectType::Contacts, hubspot_contact())
        .await
        .unwrap();
    assert_eq!(got.to_unified(), unified_contact());
}

#[tokio::test]
async fn contact_to_hubspot_writes_every_mapped_property_and_clears_missing_ones() {
    let m = mappings();
    let got = m
        .to_hubspot(ObjectType::Contacts, &fields(unified_contact()))
        .await
        .unwrap();
    assert_eq!(
        got,
        props(json!({
            "firstname": "Lorelai",
            "lastname": "Gilmore",
            "email": "lorelai@thedragonfly.com",
            "hs_additional_emails": "lorelai.g@stars-hollow.org;lg@independence-inn.com",
            "phone": "+1 860 555 0100",
            "mobilephone": "",
            "jobtitle": "Innkeeper",
            "hubspot_owner_id": "28604240",
            "lifecyclestage": "customer",
            "arr__c": "50000",
            "favorite_drink": "coffee"
        }))
    );
}

#[tokio::test]
async fn a_contact_with_one_email_and_a_mobile_only_keeps_lists() {
    let m = mappings();
    let object = json!({"id": "1", "properties": {"email": "a@x.com", "hs_additional_emails": "", "phone": "", "mobilephone": "555-0101"}});
    let got = m.to_unified(ObjectType::Contacts, object).await.unwrap();
    assert_eq!(
        got.to_unified(),
        json!({"email_addresses": ["a@x.com"], "phone_numbers": ["555-0101"]})
    );
}

#[tokio::test]
async fn a_contact_without_values_maps_to_an_empty_record() {
    let m = mappings();
    let object = json!({"id": "1", "properties": {"createdate": "2022-06-01T14:31:48.469Z", "hs_object_id": "1", "lastmodifieddate": "2025-07-07T20:27:17.947Z", "firstname": null, "lastname": ""}});
    let got = m.to_unified(ObjectType::Contacts, object).await.unwrap();
    assert!(got.is_empty(), "{got:?}");
}

fn hubspot_company() -> Value {
    json!({
        "id": "512",
        "properties": {
            "name": "Dragonfly Inn",
            "domain": "thedragonfly.com",
            "industry": "HOSPITALITY",
            "phone": "860-555-0199",
            "address": "12 Peach St",
            "city": "Stars Hollow",
            "state": "CT",
            "zip": "06001",
            "country": "United States",
            "numberofemployees": "25",
            "annualrevenue": "1250000.50",
            "createdate": "2022-06-01T14:31:48.469Z",
            "hs_lastmodifieddate": "2025-07-07T20:27:17.947Z",
            "hs_object_id": "512",
            "hs_num_open_deals": "2",
            "tier__c": "gold"
        },
        "createdAt": "2022-06-01T14:31:48.469Z",
        "updatedAt": "2025-07-07T20:27:17.947Z",
        "archived": false
    })
}

fn unified_company() -> Value {
    json!({
        "name": "Dragonfly Inn",
        "domain": "thedragonfly.com",
        "industry": "HOSPITALITY",
        "phone": "860-555-0199",
        "address": {"street": "12 Peach St", "city": "Stars Hollow", "state": "CT", "postal_code": "06001", "country": "United States"},
        "employee_count": 25,
        "annual_revenue": 1250000.5,
        "custom_fields": {"tier__c": "gold"}
    })
}

#[tokio::test]
async fn company_to_unified_types_numbers_and_nests_the_address() {
    let m = mappings();
    let got = m
        .to_unified(ObjectType::Companies, hubspot_company())
        .await
        .unwrap();
    assert_eq!(got.to_unified(), unified_company());
}

#[tokio::test]
async fn company_to_hubspot_flattens_the_address_and_writes_numbers_as_text() {
    let m = mappings();
    let got = m
        .to_hubspot(ObjectType::Companies, &fields(unified_company()))
        .await
        .unwrap();
    assert_eq!(
        got,
        props(json!({
            "name": "Dragonfly Inn", "domain": "thedragonfly.com", "industry": "HOSPITALITY",
            "phone": "860-555-0199", "address": "12 Peach St", "city": "Stars Hollow", "state": "CT",
            "zip": "06001", "country": "United States", "numberofemployees": "25",
            "annualrevenue": "1250000.5", "tier__c": "gold"
        }))
    );
}

fn hubspot_deal() -> Value {
    json!({
        "id": "9001",
        "properties": {
            "dealname": "Dragonfly renovation",
            "amount": "50000",
            "dealstage": "appointmentscheduled",
            "pipeline": "default",
            "closedate": "2024-01-17T19:55:04.281Z",
            "createdate": "2023-11-02T09:00:00.000Z",
            "hs_lastmodifieddate": "2024-01-10T12:00:00.000Z",
            "hs_object_id": "9001",
            "hs_is_closed": "false",
            "hs_projected_amount": "10000",
            "days_to_close": "76",
            "hs_v2_date_entered_current_stage": "2023-11-02T09:00:00.000Z",
            "source__c": "referral"
        },
        "createdAt": "2023-11-02T09:00:00.000Z",
        "updatedAt": "2024-01-10T12:00:00.000Z",
        "archived": false
    })
}

#[tokio::test]
async fn deal_to_unified_turns_the_close_datetime_into_a_date() {
    let m = mappings();
    let got = m
        .to_unified(ObjectType::Deals, hubspot_deal())
        .await
        .unwrap();
    assert_eq!(
        got.to_unified(),
        json!({
            "name": "Dragonfly renovation", "amount": 50000, "stage": "appointmentscheduled",
            "pipeline": "default", "close_date": "2024-01-17", "custom_fields": {"source__c": "referral"}
        })
    );
}

#[tokio::test]
async fn deal_to_hubspot_sends_the_close_date_as_midnight_epoch_ms() {
    let m = mappings();
    let record = fields(
        json!({"name": "Renovation", "amount": 1234.5, "stage": "closedwon", "pipeline": "default", "close_date": "2024-01-17", "company_id": "17"}),
    );
    let got = m.to_hubspot(ObjectType::Deals, &record).await.unwrap();
    assert_eq!(
        got,
        props(
            json!({"dealname": "Renovation", "amount": "1234.5", "dealstage": "closedwon", "pipeline": "default", "closedate": "1705449600000"})
        )
    );
}

#[tokio::test]
async fn webhook_style_epoch_ms_dates_map_to_the_same_day() {
    let m = mappings();
    let object = json!({"id": "9", "properties": {"closedate": "1705449600000"}});
    let got = m.to_unified(ObjectType::Deals, object).await.unwrap();
    assert_eq!(got.get("close_date"), &json!("2024-01-17"));
}

#[tokio::test]
async fn server_computed_properties_never_change_the_fingerprint() {
    let m = mappings();
    let mut later = hubspot_contact();
    later["properties"]["lastmodifieddate"] = json!("2026-01-01T00:00:00.000Z");
    later["properties"]["hs_all_owner_ids"] = json!("1;2");
    later["properties"]["hs_calculated_phone_number"] = json!("+1");
    let a = m
        .to_unified(ObjectType::Contacts, hubspot_contact())
        .await
        .unwrap();
    let b = m.to_unified(ObjectType::Contacts, later).await.unwrap();
    assert_eq!(Fingerprint::of(&a), Fingerprint::of(&b));
}

#[tokio::test]
async fn a_string_in_a_number_field_is_a_typed_record_error() {
    let m = mappings();
    let record = fields(json!({"name": "Acme", "annual_revenue": "lots"}));
    let err = m
        .to_hubspot(ObjectType::Companies, &record)
        .await
        .unwrap_err();
    assert!(err.is_record_error());
    assert!(
        matches!(&err, MappingError::InvalidValue { field, .. } if field == "annual_revenue"),
        "{err}"
    );
}

#[tokio::test]
async fn a_malformed_email_list_is_a_typed_record_error() {
    let m = mappings();
    for bad in [
        json!("a@x.com;b@x.com"),
        json!(["a@x.com;b@x.com"]),
        json!(["nobody"]),
        json!([1]),
    ] {
        let record = fields(json!({"email_addresses": bad}));
        let err = m
            .to_hubspot(ObjectType::Contacts, &record)
            .await
            .unwrap_err();
        assert!(
            matches!(&err, MappingError::InvalidValue { field, .. } if field == "email_addresses"),
            "{err}"
        );
    }
}

#[tokio::test]
async fn one_bad_record_does_not_fail_its_batch() {
    let m = mappings();
    let good = fields(json!({"name": "Acme", "employee_count": 10}));
    let bad = fields(json!({"name": "Bad", "employee_count": "ten"}));
    let out = m
        .to_hubspot_batch(ObjectType::Companies, vec![good.clone(), bad, good])
        .await
        .unwrap();
    assert!(out[0].is_ok() && out[2].is_ok());
    assert!(
        matches!(&out[1], Err(MappingError::InvalidValue { field, .. }) if field == "employee_count")
    );
}

#[tokio::test]
async fn three_phone_numbers_do_not_fit_hubspot() {
    let m = mappings();
    let record = fields(json!({"phone_numbers": ["1", "2", "3"]}));
    let err = m
        .to_hubspot(ObjectType::Contacts, &record)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, MappingError::InvalidValue { field, .. } if field == "phone_numbers"),
        "{err}"
    );
}

#[tokio::test]
async fn a_custom_field_named_like_a_mapped_or_computed_property_is_refused() {
    let m = mappings();
    for name in [
        "custom_fields.email",
        "custom_fields.hs_object_id",
        "custom_fields.bad name",
    ] {
        let record = fields(json!({})).tap_set(name, json!("x"));
        let err = m
            .to_hubspot(ObjectType::Contacts, &record)
            .await
            .unwrap_err();
        assert!(
            matches!(&err, MappingError::InvalidValue { field, .. } if field == name),
            "{err}"
        );
    }
}

trait TapSet {
    fn tap_set(self, k: &str, v: Value) -> Self;
}

impl TapSet for FieldMap {
    fn tap_set(mut self, k: &str, v: Value) -> Self {
        self.set(k, v);
        self
    }
}

#[tokio::test]
async fn a_hubspot_object_without_properties_is_a_record_error() {
    let m = mappings();
    let err = m
        .to_unified(ObjectType::Contacts, json!({"id": "1"}))
        .await
        .unwrap_err();
    assert!(err.is_record_error(), "{err}");
}

#[tokio::test]
async fn synced_properties_list_every_mapped_property() {
    let m = mappings();
    assert_eq!(
        m.synced_properties(ObjectType::Contacts),
        [
            "email",
            "firstname",
            "hs_additional_emails",
            "hubspot_owner_id",
            "jobtitle",
            "lastname",
            "lifecyclestage",
            "mobilephone",
            "phone"
        ]
    );
    assert!(
        m.synced_properties(ObjectType::Deals)
            .contains(&"closedate".to_owned())
    );
}
