//! The cargo-fuzz harnesses (`fuzz/src/lib.rs`) run under `cargo test` with a few thousand
//! generated inputs each — random bytes and inputs shaped like the real thing (JSON deliveries,
//! signed requests, query strings from the fields' own names and operators, mapping files with
//! pieces cut or spliced in) — plus every saved crash in `fuzz/regressions/<target>/`.
//!
//! `HUBSYNC_FUZZ_CASES` scales the case counts (default 1).

#[path = "../fuzz/src/lib.rs"]
mod harness;

use std::sync::OnceLock;

use proptest::prelude::*;
use serde_json::{Value, json};

fn cases(n: u32) -> ProptestConfig {
    let scale = std::env::var("HUBSYNC_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse::<u32>().ok())
        .unwrap_or(1);
    ProptestConfig {
        cases: n * scale.max(1),
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

fn mappings() -> &'static hubsync_mapping::Mappings {
    static MAPPINGS: OnceLock<hubsync_mapping::Mappings> = OnceLock::new();
    MAPPINGS.get_or_init(harness::shipped_mappings)
}

/// JSON values biased towards webhook events: the real field names with values of every type.
fn event_value() -> impl Strategy<Value = Value> {
    let scalar = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| json!(f)),
        "[a-zA-Z0-9._:-]{0,24}".prop_map(Value::from),
        prop_oneof![
            Just("contact.creation"),
            Just("contact.propertyChange"),
            Just("company.deletion"),
            Just("deal.merge"),
            Just("contact.associationChange"),
            Just("object.creation"),
            Just("contact.restore"),
            Just("contact.privacyDeletion"),
        ]
        .prop_map(Value::from),
    ];
    let keys = prop_oneof![
        Just("eventId"),
        Just("subscriptionId"),
        Just("portalId"),
        Just("appId"),
        Just("occurredAt"),
        Just("subscriptionType"),
        Just("eventType"),
        Just("attemptNumber"),
        Just("objectId"),
        Just("objectTypeId"),
        Just("propertyName"),
        Just("propertyValue"),
        Just("changeSource"),
        Just("sourceId"),
        Just("changeFlag"),
        Just("mergedObjectIds"),
        Just("primaryObjectId"),
        Just("newObjectId"),
        Just("fromObjectId"),
        Just("toObjectId"),
        Just("associationType"),
        Just("associationRemoved"),
        Just("isPrimaryAssociation"),
        Just("numberOfPropertiesMoved"),
    ];
    let value = scalar.prop_recursive(2, 8, 3, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            prop::collection::btree_map("[a-zA-Z]{1,8}", inner, 0..4).prop_map(|m| json!(m)),
        ]
    });
    prop::collection::btree_map(keys, value, 0..12)
        .prop_map(|m| Value::Object(m.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()))
}

/// A well-formed event with some fields replaced by generated ones.
fn near_valid_event() -> impl Strategy<Value = Value> {
    (event_value(), any::<u64>(), any::<u32>(), any::<i64>()).prop_map(|(overrides, event_id, portal, at)| {
        let mut base = json!({
            "eventId": event_id, "subscriptionId": 1, "portalId": portal, "appId": 54321, "occurredAt": at,
            "subscriptionType": "contact.propertyChange", "attemptNumber": 0, "objectId": 101,
            "propertyName": "email", "propertyValue": "a@example.com", "changeSource": "CRM_UI", "sourceId": "userId:1"
        });
        if let (Some(b), Some(o)) = (base.as_object_mut(), overrides.as_object()) {
            for (k, v) in o {
                b.insert(k.clone(), v.clone());
            }
        }
        base
    })
}

proptest! {
    #![proptest_config(cases(3000))]

    #[test]
    fn webhook_delivery_survives_random_bytes(data in prop::collection::vec(any::<u8>(), 0..512)) {
        harness::webhook_delivery(&data);
    }

    #[test]
    fn webhook_signature_accepts_only_the_truth(
        secret in "[ -~]{0,40}",
        method in prop_oneof![Just("POST".to_owned()), "[A-Z]{0,7}"],
        uri in prop_oneof!["https://[a-z.]{1,20}/[a-zA-Z0-9/%?=&:@!$'()*+,;._~-]{0,40}", "[ -~]{0,60}"],
        body in prop::collection::vec(any::<u8>(), 0..256),
        signature in prop_oneof!["[A-Za-z0-9+/=]{0,48}", "[ -~]{0,60}"],
        timestamp in prop_oneof![any::<i64>().prop_map(|t| t.to_string()), (harness::NOW_MS - 400_000..harness::NOW_MS + 400_000).prop_map(|t| t.to_string()), "[ -~]{0,24}"],
        skew in any::<u8>(),
    ) {
        // The harness splits at 0x00 bytes: keep the generated parts free of them.
        let strip = |b: &[u8]| b.iter().copied().filter(|c| *c != 0).collect::<Vec<u8>>();
        let mut data = Vec::new();
        for part in [secret.as_bytes(), method.as_bytes(), uri.as_bytes(), &strip(&body), signature.as_bytes(), timestamp.as_bytes()] {
            data.extend_from_slice(part);
            data.push(0);
        }
        data.push(skew);
        harness::webhook_signature(&data);
    }

    #[test]
    fn webhook_signature_survives_random_bytes(data in prop::collection::vec(any::<u8>(), 0..256)) {
        harness::webhook_signature(&data);
    }

    #[test]
    fn filter_parser_survives_random_bytes(data in prop::collection::vec(any::<u8>(), 0..256)) {
        harness::filter_params(mappings(), &data);
    }
}

proptest! {
    // Structured generators are slow in a debug build: fewer, richer cases.
    #![proptest_config(cases(600))]

    #[test]
    fn webhook_delivery_survives_event_shaped_json(events in prop::collection::vec(prop_oneof![event_value(), near_valid_event()], 0..8)) {
        harness::webhook_delivery(&serde_json::to_vec(&events).expect("json"));
    }

    #[test]
    fn filter_parser_survives_field_shaped_query_strings(
        ty in any::<u8>(),
        params in prop::collection::vec((
            prop_oneof![
                Just("email_addresses"), Just("first_name"), Just("last_name"), Just("title"), Just("name"), Just("domain"),
                Just("amount"), Just("close_date"), Just("stage"), Just("created_at"), Just("updated_at"), Just("hubspot_id"),
                Just("custom_fields.tier"), Just("custom_fields."), Just("phone_numbers"), Just("owner_id"), Just("x"), Just(""),
            ],
            prop_oneof![
                Just(""), Just("[eq]"), Just("[neq]"), Just("[in]"), Just("[not_in]"), Just("[gt]"), Just("[gte]"), Just("[lt]"),
                Just("[lte]"), Just("[contains]"), Just("[is_null]"), Just("[not_null]"), Just("[between]"), Just("[]"), Just("["),
                Just("[eq][eq]"), Just("[IN]"), Just("[eq"), Just("eq]"),
            ],
            prop_oneof![
                "[ -~]{0,30}",
                "[0-9]{1,20}",
                "-?[0-9]{1,4}(\\.[0-9]{1,4})?(e[0-9]{1,3})?",
                "[0-9]{4}-[0-9]{2}-[0-9]{2}(T[0-9]{2}:[0-9]{2}:[0-9]{2}Z)?",
                prop::collection::vec("[a-z0-9@.]{0,6}", 0..150).prop_map(|v| v.join(",")),
                Just("true".to_owned()), Just("null".to_owned()),
            ],
        ), 0..10),
    ) {
        let query: Vec<String> = params.iter().map(|(f, op, v)| format!("{f}{op}={v}")).collect();
        let mut data = vec![ty];
        data.extend_from_slice(query.join("&").as_bytes());
        harness::filter_params(mappings(), &data);
    }
}

proptest! {
    // Each case compiles nine JSONata expressions and starts a thread: fewer cases.
    #![proptest_config(cases(250))]

    #[test]
    fn mapping_loader_survives_corrupted_files(
        which in any::<u8>(),
        how in any::<u8>(),
        offset in any::<u16>(),
        insert in prop_oneof![
            "[ -~\n]{0,40}",
            Just("\"".to_owned()), Just("]".to_owned()), Just("[fields.x]\ntype = 1\n".to_owned()), Just("(".to_owned()),
            Just("$x(".to_owned()), Just("{\"a\": $$.properties.".to_owned()), Just("\u{0}".to_owned()), Just("é€𝄞".to_owned()),
            Just("ops = [\"eq\", \"bogus\"]\n".to_owned()), Just("type = \"email_list\"\nmax_items = -1\n".to_owned()),
            Just("$reduce([1..100000000], function($a,$b){$a+$b})".to_owned()),
        ],
    ) {
        let [hi, lo] = offset.to_be_bytes();
        let mut data = vec![which, how, hi, lo];
        data.extend_from_slice(insert.as_bytes());
        harness::mapping_files(&data);
    }
}

/// Every input a fuzzer ever crashed on stays a test (`fuzz/regressions/<target>/<file>`), and
/// the seed inputs (`fuzz/seeds/<target>/`) stay valid.
#[test]
fn saved_fuzz_crashes_stay_fixed() {
    let fuzz = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let mut ran = 0;
    for root in [fuzz.join("regressions"), fuzz.join("seeds")] {
        for (target, run) in [
            ("webhook_delivery", harness::webhook_delivery as fn(&[u8])),
            ("webhook_signature", harness::webhook_signature),
            ("filter_params", |d: &[u8]| {
                harness::filter_params(mappings(), d)
            }),
            ("mapping_files", harness::mapping_files),
        ] {
            let Ok(entries) = std::fs::read_dir(root.join(target)) else {
                continue;
            };
            for entry in entries.flatten() {
                if entry.path().extension().is_some_and(|e| e == "md") {
                    continue;
                }
                let data = std::fs::read(entry.path()).expect("read regression input");
                run(&data);
                ran += 1;
            }
        }
    }
    eprintln!("{ran} saved fuzz inputs replayed");
}
