//! Filter translation: unified queries to HubSpot `filterGroups` (compared with HubSpot's
//! documented examples) and to conditions on the local mirror.

use hubsync_core::ObjectType;
use hubsync_mapping::{FilterError, Mappings, SqlFilter, SqlOp};
use serde_json::{Value, json};

fn mappings() -> Mappings {
    Mappings::embedded().expect("shipped mappings load")
}

fn groups(m: &Mappings, ty: ObjectType, query: &[(&str, &str)]) -> Result<Value, FilterError> {
    let rules = m.filter_rules(ty);
    let filters = rules.parse(query.iter().copied())?;
    Ok(serde_json::to_value(rules.to_filter_groups(&filters)?).expect("serializable"))
}

fn sql(m: &Mappings, ty: ObjectType, query: &[(&str, &str)]) -> Vec<SqlFilter> {
    let rules = m.filter_rules(ty);
    rules.to_sql_filters(&rules.parse(query.iter().copied()).expect("a valid query"))
}

fn cond(field: &str, op: SqlOp, value: Value) -> SqlFilter {
    SqlFilter {
        field: field.into(),
        op,
        value,
    }
}

#[test]
fn eq_and_neq_make_one_anded_group_like_hubspots_example() {
    // HubSpot's documented first group: firstname EQ Alice AND lastname NEQ Smith.
    let m = mappings();
    let got = groups(
        &m,
        ObjectType::Contacts,
        &[("first_name", "Alice"), ("last_name[neq]", "Smith")],
    )
    .unwrap();
    assert_eq!(
        got,
        json!([{"filters": [
            {"propertyName": "firstname", "operator": "EQ", "value": "Alice"},
            {"propertyName": "lastname", "operator": "NEQ", "value": "Smith"}
        ]}])
    );
}

#[test]
fn is_null_becomes_not_has_property_like_hubspots_example() {
    let m = mappings();
    let got = groups(
        &m,
        ObjectType::Contacts,
        &[("email_addresses[is_null]", "true")],
    )
    .unwrap();
    assert_eq!(
        got,
        json!([{"filters": [{"propertyName": "email", "operator": "NOT_HAS_PROPERTY"}]}])
    );
    let got = groups(&m, ObjectType::Contacts, &[("title[not_null]", "")]).unwrap();
    assert_eq!(
        got,
        json!([{"filters": [{"propertyName": "jobtitle", "operator": "HAS_PROPERTY"}]}])
    );
}

#[test]
fn between_sends_epoch_ms_like_hubspots_example() {
    // HubSpot's documented BETWEEN: "value":"1579514400000","highValue":"1642672800000".
    let m = mappings();
    let got = groups(
        &m,
        ObjectType::Contacts,
        &[(
            "updated_at[between]",
            "2020-01-20T10:00:00Z,2022-01-20T10:00:00Z",
        )],
    )
    .unwrap();
    assert_eq!(
        got,
        json!([{"filters": [{"propertyName": "lastmodifieddate", "operator": "BETWEEN", "value": "1579514400000", "highValue": "1642672800000"}]}])
    );
}

#[test]
fn updated_after_searches_the_types_own_last_modified_property() {
    let m = mappings();
    let contacts = groups(
        &m,
        ObjectType::Contacts,
        &[("updated_after", "2024-01-17T19:55:04.281Z")],
    )
    .unwrap();
    assert_eq!(
        contacts,
        json!([{"filters": [{"propertyName": "lastmodifieddate", "operator": "GT", "value": "1705521304281"}]}])
    );
    let deals = groups(&m, ObjectType::Deals, &[("updated_after", "1705521304281")]).unwrap();
    assert_eq!(
        deals,
        json!([{"filters": [{"propertyName": "hs_lastmodifieddate", "operator": "GT", "value": "1705521304281"}]}])
    );
}

#[test]
fn in_values_are_lowercased_for_text_properties_only() {
    let m = mappings();
    let got = groups(&m, ObjectType::Contacts, &[("first_name[in]", "Alice,BOB")]).unwrap();
    assert_eq!(
        got,
        json!([{"filters": [{"propertyName": "firstname", "operator": "IN", "values": ["alice", "bob"]}]}])
    );
    // lifecyclestage is an enumeration: case-sensitive.
    let got = groups(
        &m,
        ObjectType::Contacts,
        &[("lifecycle_stage[in]", "lead,marketingQualifiedLead")],
    )
    .unwrap();
    assert_eq!(
        got,
        json!([{"filters": [{"propertyName": "lifecyclestage", "operator": "IN", "values": ["lead", "marketingQualifiedLead"]}]}])
    );
}

#[test]
fn email_filters_the_primary_address() {
    let m = mappings();
    let got = groups(
        &m,
        ObjectType::Contacts,
        &[("email", "lorelai@thedragonfly.com")],
    )
    .unwrap();
    assert_eq!(
        got,
        json!([{"filters": [{"propertyName": "email", "operator": "EQ", "value": "lorelai@thedragonfly.com"}]}])
    );
}

#[test]
fn custom_field_ranges_go_to_the_custom_property() {
    let m = mappings();
    let got = groups(
        &m,
        ObjectType::Contacts,
        &[("custom_fields.arr__c[gte]", "50000")],
    )
    .unwrap();
    assert_eq!(
        got,
        json!([{"filters": [{"propertyName": "arr__c", "operator": "GTE", "value": "50000"}]}])
    );
}

#[test]
fn a_date_equality_is_the_whole_day_in_hubspot() {
    let m = mappings();
    let got = groups(
        &m,
        ObjectType::Deals,
        &[("close_date", "2024-01-17"), ("amount[gt]", "1000.50")],
    )
    .unwrap();
    assert_eq!(
        got,
        json!([{"filters": [
            {"propertyName": "closedate", "operator": "BETWEEN", "value": "1705449600000", "highValue": "1705535999999"},
            {"propertyName": "amount", "operator": "GT", "value": "1000.5"}
        ]}])
    );
    let got = groups(&m, ObjectType::Deals, &[("close_date[lte]", "2024-01-17")]).unwrap();
    assert_eq!(
        got,
        json!([{"filters": [{"propertyName": "closedate", "operator": "LTE", "value": "1705535999999"}]}])
    );
}

#[test]
fn an_inexpressible_filter_is_refused_by_name() {
    let m = mappings();
    let err = groups(&m, ObjectType::Deals, &[("close_date[neq]", "2024-01-17")]).unwrap_err();
    assert!(
        matches!(&err, FilterError::NotSearchable { name, .. } if name == "close_date[neq]"),
        "{err}"
    );
    let err = groups(
        &m,
        ObjectType::Contacts,
        &[("first_name", "A"), ("phone", "555-0100")],
    )
    .unwrap_err();
    assert!(
        matches!(&err, FilterError::NotSearchable { name, .. } if name == "phone"),
        "{err}"
    );
    assert!(err.to_string().contains("`phone`"));
}

#[test]
fn more_filters_than_hubspot_allows_are_refused() {
    let m = mappings();
    let query = [
        ("first_name", "a"),
        ("last_name", "b"),
        ("title", "c"),
        ("owner_id", "1"),
        ("lifecycle_stage", "lead"),
        ("email", "a@x.com"),
        ("custom_fields.arr__c[gt]", "1"),
    ];
    let err = groups(&m, ObjectType::Contacts, &query).unwrap_err();
    assert_eq!(
        err,
        FilterError::TooManyFilters {
            name: "custom_fields.arr__c[gt]".into(),
            limit: 6
        }
    );
    assert!(groups(&m, ObjectType::Contacts, &query[..6]).is_ok());
}

#[test]
fn unknown_fields_operators_and_values_are_refused_by_name() {
    let m = mappings();
    let rules = m.filter_rules(ObjectType::Companies);
    assert_eq!(
        rules.parse_one("colour", "red").unwrap_err(),
        FilterError::UnknownField {
            name: "colour".into()
        }
    );
    assert!(
        matches!(rules.parse_one("name[gt]", "a").unwrap_err(), FilterError::UnsupportedOperator { name, .. } if name == "name[gt]")
    );
    assert!(
        matches!(rules.parse_one("name[like]", "a").unwrap_err(), FilterError::UnsupportedOperator { op, .. } if op == "like")
    );
    assert!(
        matches!(rules.parse_one("employee_count[gte]", "many").unwrap_err(), FilterError::InvalidValue { name, .. } if name == "employee_count[gte]")
    );
    assert!(matches!(
        rules.parse_one("name", "").unwrap_err(),
        FilterError::InvalidValue { .. }
    ));
    assert!(matches!(
        rules
            .parse_one("custom_fields.hs_object_id", "1")
            .unwrap_err(),
        FilterError::UnknownField { .. }
    ));
    assert!(matches!(
        rules.parse_one("custom_fields.a'b", "1").unwrap_err(),
        FilterError::UnknownField { .. }
    ));
    let deals = m.filter_rules(ObjectType::Deals);
    assert!(matches!(
        deals.parse_one("close_date", "17/01/2024").unwrap_err(),
        FilterError::InvalidValue { .. }
    ));
}

#[test]
fn sql_filters_use_columns_json_lists_and_custom_paths_with_typed_values() {
    let m = mappings();
    assert_eq!(
        sql(
            &m,
            ObjectType::Contacts,
            &[
                ("first_name", "John"),
                ("email", "j@x.com"),
                ("custom_fields.arr__c[gte]", "50000"),
                ("title[is_null]", "")
            ]
        ),
        vec![
            cond("first_name", SqlOp::Eq, json!("John")),
            cond("email_addresses", SqlOp::Contains, json!("j@x.com")),
            cond("custom_fields.arr__c", SqlOp::Gte, json!(50000)),
            cond("title", SqlOp::IsNull, Value::Null),
        ]
    );
}

#[test]
fn sql_timestamps_are_epoch_ms_and_between_is_two_bounds() {
    let m = mappings();
    assert_eq!(
        sql(
            &m,
            ObjectType::Deals,
            &[
                ("updated_after", "2024-01-17T19:55:04.281Z"),
                ("close_date[between]", "2024-01-01,2024-03-31")
            ]
        ),
        vec![
            cond("updated_at", SqlOp::Gt, json!(1_705_521_304_281_i64)),
            cond("close_date", SqlOp::Gte, json!("2024-01-01")),
            cond("close_date", SqlOp::Lte, json!("2024-03-31")),
        ]
    );
    assert_eq!(
        sql(
            &m,
            ObjectType::Companies,
            &[
                ("employee_count[in]", "10, 25.0"),
                ("annual_revenue[lt]", "1e6")
            ]
        ),
        vec![
            cond("employee_count", SqlOp::In, json!([10, 25])),
            cond("annual_revenue", SqlOp::Lt, json!(1_000_000))
        ]
    );
}

#[test]
fn sql_ops_serialize_like_the_stores_filter_ops() {
    let names: Vec<Value> = [
        SqlOp::Eq,
        SqlOp::Neq,
        SqlOp::Lt,
        SqlOp::Lte,
        SqlOp::Gt,
        SqlOp::Gte,
        SqlOp::In,
        SqlOp::Contains,
        SqlOp::IsNull,
        SqlOp::NotNull,
    ]
    .iter()
    .map(|op| serde_json::to_value(op).expect("serializable"))
    .collect();
    assert_eq!(
        names,
        [
            "eq", "neq", "lt", "lte", "gt", "gte", "in", "contains", "is_null", "not_null"
        ]
        .map(Value::from)
    );
}

#[test]
fn no_filters_mean_no_filter_groups() {
    let m = mappings();
    assert_eq!(groups(&m, ObjectType::Deals, &[]).unwrap(), json!([]));
}
