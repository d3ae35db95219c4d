//! Property tests: for every valid unified record `x`, `to_unified(to_hubspot(x)) == x`, and
//! the fingerprint of a record survives the trip (and HubSpot's echo of it).

use std::collections::BTreeMap;
use std::sync::OnceLock;

use hubsync_core::{FieldMap, Fingerprint, ObjectType};
use hubsync_mapping::Mappings;
use proptest::prelude::*;
use serde_json::{Value, json};

fn mappings() -> &'static Mappings {
    static M: OnceLock<Mappings> = OnceLock::new();
    M.get_or_init(|| Mappings::embedded().expect("shipped mappings load"))
}

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime")
    })
}

/// Non-empty text, including characters JSONata and HubSpot must pass through untouched.
fn text() -> impl Strategy<Value = String> {
    "[A-Za-z0-9 éß'\"\\\\/;:,.&+_-]{0,12}[A-Za-z0-9éß]"
}

fn opt<T: std::fmt::Debug + Clone + 'static>(
    s: impl Strategy<Value = T> + 'static,
) -> impl Strategy<Value = Option<T>> {
    prop::option::weighted(0.7, s)
}

fn email() -> impl Strategy<Value = String> {
    "[a-z0-9._%+-]{1,10}@[a-z0-9-]{1,8}\\.(com|org|io)"
}

fn emails() -> impl Strategy<Value = Vec<String>> {
    prop::collection::btree_set(email(), 0..4).prop_map(|s| s.into_iter().collect())
}

fn custom() -> impl Strategy<Value = BTreeMap<String, String>> {
    prop::collection::btree_map("(arr|tier|source|x)_[a-z0-9]{0,6}__c", text(), 0..4)
}

fn record(pairs: Vec<(&str, Option<Value>)>, custom: BTreeMap<String, String>) -> FieldMap {
    let mut map = FieldMap::new();
    for (k, v) in pairs {
        map.set(k, v.unwrap_or(Value::Null));
    }
    for (k, v) in custom {
        map.set(format!("custom_fields.{k}"), Value::String(v));
    }
    map
}

fn list(v: Vec<String>) -> Option<Value> {
    (!v.is_empty()).then(|| json!(v))
}

prop_compose! {
    fn contact()(
        first in opt(text()), last in opt(text()), emails in emails(),
        phones in prop::collection::vec("[0-9+(][0-9() -]{0,10}[0-9]", 0..3), title in opt(text()),
        owner in opt("[1-9][0-9]{0,9}"), stage in opt("(lead|customer|marketingqualifiedlead)"),
        custom in custom(),
    ) -> FieldMap {
        record(vec![
            ("first_name", first.map(Value::from)), ("last_name", last.map(Value::from)),
            ("email_addresses", list(emails)), ("phone_numbers", list(phones)),
            ("title", title.map(Value::from)), ("owner_id", owner.map(Value::from)),
            ("lifecycle_stage", stage.map(Value::from)),
        ], custom)
    }
}

prop_compose! {
    fn company()(
        name in opt(text()), domain in opt("[a-z]{1,10}\\.com"), industry in opt("[A-Z_]{1,12}"),
        phone in opt("[0-9-]{1,12}"),
        address in prop::collection::btree_map("(street|city|state|postal_code|country)", text(), 0..5),
        employees in opt(0i64..1_000_000), revenue in opt(prop_oneof![
            (0i64..1_000_000_000).prop_map(Value::from),
            (0u32..100_000_000, 1u32..100).prop_map(|(a, c)| json!(f64::from(a) + f64::from(c) / 100.0)),
        ]),
        custom in custom(),
    ) -> FieldMap {
        let address = (!address.is_empty()).then(|| json!(address));
        record(vec![
            ("name", name.map(Value::from)), ("domain", domain.map(Value::from)),
            ("industry", industry.map(Value::from)), ("phone", phone.map(Value::from)),
            ("address", address), ("employee_count", employees.map(Value::from)),
            ("annual_revenue", revenue),
        ], custom)
    }
}

prop_compose! {
    fn deal()(
        name in opt(text()), amount in opt((0i64..10_000_000).prop_map(Value::from)),
        stage in opt("[a-z0-9]{1,20}"), pipeline in opt("(default|[0-9]{3,9})"),
        day in opt(0i64..40_000), custom in custom(),
    ) -> FieldMap {
        let date = day.map(|d| {
            let date = time::Date::from_julian_day(2_440_588 + d as i32).expect("a date");
            Value::from(format!("{:04}-{:02}-{:02}", date.year(), u8::from(date.month()), date.day()))
        });
        record(vec![
            ("name", name.map(Value::from)), ("amount", amount), ("stage", stage.map(Value::from)),
            ("pipeline", pipeline.map(Value::from)), ("close_date", date),
        ], custom)
    }
}

/// HubSpot's answer to a write: the properties back, with the values it computes itself.
fn echo(props: &BTreeMap<String, String>) -> Value {
    let mut properties: serde_json::Map<String, Value> = props
        .iter()
        .map(|(k, v)| {
            (
                k.clone(),
                if v.is_empty() {
                    Value::Null
                } else {
                    Value::from(v.clone())
                },
            )
        })
        .collect();
    properties.insert("hs_object_id".into(), json!("101"));
    properties.insert("createdate".into(), json!("2024-01-17T19:55:04.281Z"));
    properties.insert("lastmodifieddate".into(), json!("2025-07-07T20:27:17.947Z"));
    properties.insert(
        "hs_lastmodifieddate".into(),
        json!("2025-07-07T20:27:17.947Z"),
    );
    properties.insert("hubsync_origin".into(), json!("hubsync"));
    // HubSpot returns datetimes as ISO text, not the epoch ms we sent.
    if let Some(Value::String(ms)) = properties.get("closedate")
        && let Ok(ms) = ms.parse::<i64>()
    {
        let t = time::OffsetDateTime::from_unix_timestamp(ms / 1000).expect("an instant");
        let iso = t
            .format(&time::format_description::well_known::Rfc3339)
            .expect("formats");
        properties.insert("closedate".into(), Value::from(iso));
    }
    json!({"id": "101", "properties": properties})
}

fn round_trip(ty: ObjectType, x: &FieldMap) -> Result<(), TestCaseError> {
    let m = mappings();
    let normalized = m
        .normalize(ty, x)
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
    prop_assert_eq!(&normalized, x, "generated records are canonical");
    let back = runtime().block_on(async {
        let props = m
            .to_hubspot(ty, x)
            .await
            .expect("valid records map to HubSpot");
        m.to_unified(ty, echo(&props))
            .await
            .expect("HubSpot's echo maps back")
    });
    prop_assert_eq!(&back, x);
    prop_assert_eq!(Fingerprint::of(&back), Fingerprint::of(x));
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn contacts_round_trip(x in contact()) {
        round_trip(ObjectType::Contacts, &x)?;
    }

    #[test]
    fn companies_round_trip(x in company()) {
        round_trip(ObjectType::Companies, &x)?;
    }

    #[test]
    fn deals_round_trip(x in deal()) {
        round_trip(ObjectType::Deals, &x)?;
    }

    /// Numbers in any spelling the app or HubSpot may use fingerprint alike.
    #[test]
    fn number_spellings_fingerprint_alike(n in 0i64..1_000_000_000) {
        let m = mappings();
        let spellings = [json!(n), json!(n.to_string()), json!(n as f64), json!(format!("{n}.00"))];
        let prints: Vec<Fingerprint> = spellings
            .iter()
            .map(|v| {
                let mut f = FieldMap::new();
                f.set("annual_revenue", v.clone());
                Fingerprint::of(&m.normalize(ObjectType::Companies, &f).expect("a number"))
            })
            .collect();
        prop_assert!(prints.windows(2).all(|w| w[0] == w[1]));
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, failure_persistence: None, ..ProptestConfig::default() })]

    /// Whatever HubSpot adds of its own computed properties, none reaches the unified record.
    #[test]
    fn server_computed_properties_never_reach_the_record(
        names in prop::collection::btree_set(
            "(hs_all_|hs_calculated_|hs_searchable_calculated_|hs_analytics_|hs_time_in_|hs_date_entered_|hs_v2_)[a-z_]{1,12}",
            0..6,
        ),
        value in "[a-z0-9]{1,8}",
    ) {
        let m = mappings();
        let mut properties = serde_json::Map::new();
        for name in &names {
            properties.insert(name.clone(), Value::from(value.clone()));
        }
        for name in ["createdate", "lastmodifieddate", "hs_lastmodifieddate", "hs_object_id", "hs_createdate", "hs_merged_object_ids", "hubsync_id", "hubsync_origin"] {
            properties.insert(name.to_owned(), Value::from(value.clone()));
        }
        for ty in ObjectType::ALL {
            let object = json!({"id": "1", "properties": properties.clone()});
            let got = runtime().block_on(m.to_unified(ty, object)).expect("maps");
            prop_assert!(got.is_empty(), "{ty}: {got:?}");
        }
    }
}
