//! Measures mapping throughput: records per second through each direction, in batches of 100
//! (the outbound push and import page size), for contacts with a realistic property set.
//!
//! Run with `cargo run --release -p hubsync-mapping --example throughput`.

use std::time::Instant;

use hubsync_core::{FieldMap, ObjectType};
use hubsync_mapping::{MappingOptions, Mappings};
use serde_json::{Value, json};

const BATCH: usize = 100;
const BATCHES: usize = 200;

fn contact(i: usize) -> Value {
    let mut properties = serde_json::Map::new();
    for (k, v) in [
        ("firstname", format!("First{i}")),
        ("lastname", format!("Last{i}")),
        ("email", format!("person{i}@example.com")),
        (
            "hs_additional_emails",
            format!("p{i}@alt.example.org;q{i}@alt.example.org"),
        ),
        ("phone", "+1 860 555 0100".to_owned()),
        ("mobilephone", String::new()),
        ("jobtitle", "Engineer".to_owned()),
        ("hubspot_owner_id", "28604240".to_owned()),
        ("lifecyclestage", "customer".to_owned()),
        ("createdate", "2022-06-01T14:31:48.469Z".to_owned()),
        ("lastmodifieddate", "2025-07-07T20:27:17.947Z".to_owned()),
        ("hs_object_id", i.to_string()),
        ("hs_all_owner_ids", "28604240".to_owned()),
        ("hs_calculated_phone_number", "+18605550100".to_owned()),
    ] {
        properties.insert(k.to_owned(), Value::String(v));
    }
    for c in 0..10 {
        properties.insert(
            format!("custom_{c}__c"),
            Value::String(format!("value {c}")),
        );
    }
    json!({"id": i.to_string(), "properties": properties})
}

fn rate(records: usize, start: Instant) -> f64 {
    records as f64 / start.elapsed().as_secs_f64()
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let m = Mappings::load(&MappingOptions {
        workers: 2,
        ..MappingOptions::default()
    })?;
    let objects: Vec<Value> = (0..BATCH).map(contact).collect();
    let records: Vec<FieldMap> = m
        .to_unified_batch(ObjectType::Contacts, objects.clone())
        .await?
        .into_iter()
        .collect::<Result<_, _>>()?;

    // Warm up both directions (bytecode is compiled lazily on the first evaluation).
    m.to_hubspot_batch(ObjectType::Contacts, records.clone())
        .await?;

    let start = Instant::now();
    for _ in 0..BATCHES {
        m.to_unified_batch(ObjectType::Contacts, objects.clone())
            .await?;
    }
    println!(
        "to_unified, one batch at a time:  {:>9.0} records/s",
        rate(BATCH * BATCHES, start)
    );

    let start = Instant::now();
    for _ in 0..BATCHES {
        m.to_hubspot_batch(ObjectType::Contacts, records.clone())
            .await?;
    }
    println!(
        "to_hubspot, one batch at a time:  {:>9.0} records/s",
        rate(BATCH * BATCHES, start)
    );

    let start = Instant::now();
    for _ in 0..BATCHES / 2 {
        let (a, b) = tokio::join!(
            m.to_unified_batch(ObjectType::Contacts, objects.clone()),
            m.to_unified_batch(ObjectType::Contacts, objects.clone())
        );
        a?;
        b?;
    }
    println!(
        "to_unified, two batches at once:  {:>9.0} records/s",
        rate(BATCH * BATCHES, start)
    );

    let start = Instant::now();
    for _ in 0..BATCHES / 2 {
        let (a, b) = tokio::join!(
            m.to_hubspot_batch(ObjectType::Contacts, records.clone()),
            m.to_hubspot_batch(ObjectType::Contacts, records.clone())
        );
        a?;
        b?;
    }
    println!(
        "to_hubspot, two batches at once:  {:>9.0} records/s",
        rate(BATCH * BATCHES, start)
    );
    Ok(())
}
