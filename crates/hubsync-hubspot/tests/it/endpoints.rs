//! The typed endpoints against the emulator: batch shapes (200/201/207), upserts, conflicts,
//! paging, search, properties, associations and merge.

use hubsync_core::{HubspotId, ObjectType};
use hubsync_emulator::{DEFAULT_USER_ID, ObjectKind};
use hubsync_hubspot::model::{
    AssociationArchive, AssociationCreate, AssociationSpec, BatchReadRequest, CreateInput, Filter,
    FilterGroup, FilterOperator, HUBSYNC_ID_PROPERTY, HUBSYNC_ORIGIN_PROPERTY, ListParams,
    ObjectKey, SearchRequest, UpdateInput, UpsertInput,
};
use hubsync_hubspot::{ApiError, LaneKind};

use crate::common::{PORTAL, Setup, props, start};

fn contact(bed: &crate::common::Bed, email: &str, first: &str) -> HubspotId {
    let id = bed
        .admin()
        .create(
            PORTAL.get(),
            ObjectKind::Contact,
            [("email", email), ("firstname", first)],
            DEFAULT_USER_ID,
        )
        .unwrap();
    HubspotId(id)
}

#[tokio::test]
async fn upsert_by_hubsync_id_creates_once_and_a_replay_updates() {
    let bed = start(Setup::default()).await;
    let setup = bed
        .portal
        .ensure_hubsync_properties(ObjectType::Contacts)
        .await
        .unwrap();
    assert_eq!(
        setup.created,
        vec![
            HUBSYNC_ID_PROPERTY.to_owned(),
            HUBSYNC_ORIGIN_PROPERTY.to_owned()
        ]
    );
    let again = bed
        .portal
        .ensure_hubsync_properties(ObjectType::Contacts)
        .await
        .unwrap();
    assert!(again.created.is_empty(), "set-up is idempotent");

    let inputs: Vec<UpsertInput> = (0..3)
        .map(|i| {
            let email = format!("u{i}@example.com");
            UpsertInput::by_hubsync_id(
                format!("local-{i}"),
                props([
                    ("email", email.as_str()),
                    (HUBSYNC_ORIGIN_PROPERTY, "hubsync:1"),
                ]),
            )
        })
        .collect();
    let first = bed
        .portal
        .batch_upsert(ObjectType::Contacts, &inputs)
        .await
        .unwrap();
    assert_eq!(first.results.len(), 3);
    assert!(first.results.iter().all(|r| r.new), "first upsert creates");
    let mut keys: Vec<&str> = first
        .results
        .iter()
        .filter_map(|r| r.object.property(HUBSYNC_ID_PROPERTY))
        .collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        ["local-0", "local-1", "local-2"],
        "results map back to inputs by the key"
    );

    // The "crash after HubSpot answered" replay: same inputs, no second record.
    let replay = bed
        .portal
        .batch_upsert(ObjectType::Contacts, &inputs)
        .await
        .unwrap();
    assert!(replay.results.iter().all(|r| !r.new));
    assert_eq!(
        bed.admin()
            .count(PORTAL.get(), ObjectKind::Contact)
            .unwrap(),
        3
    );
}

#[tokio::test]
async fn batch_read_answers_207_naming_the_missing_ids() {
    let bed = start(Setup::default()).await;
    let a = contact(&bed, "a@example.com", "Ann");
    let b = contact(&bed, "b@example.com", "Bob");
    let missing = HubspotId(999_999_999);
    let read = BatchReadRequest::by_ids([a, b, missing], &["email", "firstname"]);
    let batch = bed
        .portal
        .batch_read(ObjectType::Contacts, &read)
        .await
        .unwrap();
    assert_eq!(batch.http_status, 207);
    assert_eq!(batch.results.len(), 2);
    let error = batch
        .error_for_id(&missing.to_string())
        .expect("the missing id is named");
    assert_eq!(error.category(), "OBJECT_NOT_FOUND");
    assert!(batch.error_for_id(&a.to_string()).is_none());
    let ann = batch.results.iter().find(|o| o.id == a).unwrap();
    assert_eq!(ann.property("firstname"), Some("Ann"));

    // By a unique property instead of the id.
    let by_email = BatchReadRequest {
        ids: vec!["b@example.com".into()],
        properties: vec!["firstname".into()],
        id_property: Some("email".into()),
        archived: false,
    };
    let batch = bed
        .portal
        .batch_read(ObjectType::Contacts, &by_email)
        .await
        .unwrap();
    assert_eq!((batch.http_status, batch.results[0].id), (200, b));
}

#[tokio::test]
async fn batch_create_with_trace_ids_fails_only_the_bad_input() {
    let bed = start(Setup::default()).await;
    let inputs = vec![
        CreateInput {
            properties: props([("email", "good@example.com")]),
            object_write_trace_id: Some("outbox-1".into()),
            ..CreateInput::default()
        },
        CreateInput {
            properties: props([("email", "bad@example.com"), ("no_such_property", "x")]),
            object_write_trace_id: Some("outbox-2".into()),
            ..CreateInput::default()
        },
    ];
    let batch = bed
        .portal
        .batch_create(ObjectType::Contacts, &inputs)
        .await
        .unwrap();
    assert_eq!(batch.http_status, 207);
    assert_eq!(batch.results.len(), 1);
    assert_eq!(batch.results[0].property("email"), Some("good@example.com"));
    assert!(batch.error_for_trace_id("outbox-1").is_none());
    let bad = batch
        .error_for_trace_id("outbox-2")
        .expect("the bad input is named by its trace id");
    assert_eq!(bad.category(), "VALIDATION_ERROR");

    // All good: 201.
    let ok = vec![CreateInput {
        properties: props([("email", "third@example.com")]),
        ..CreateInput::default()
    }];
    assert_eq!(
        bed.portal
            .batch_create(ObjectType::Contacts, &ok)
            .await
            .unwrap()
            .http_status,
        201
    );
}

#[tokio::test]
async fn duplicate_email_create_is_a_conflict_naming_the_existing_id() {
    let bed = start(Setup::default()).await;
    let existing = contact(&bed, "dup@example.com", "First");
    let inputs = vec![CreateInput {
        properties: props([("email", "dup@example.com")]),
        ..CreateInput::default()
    }];
    match bed.portal.batch_create(ObjectType::Contacts, &inputs).await {
        Err(ApiError::Conflict { existing_id, error }) => {
            assert_eq!(existing_id, Some(existing));
            assert_eq!(error.category(), "CONFLICT");
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
}

#[tokio::test]
async fn update_get_and_archive_round_trip_with_typed_errors() {
    let bed = start(Setup::default()).await;
    let id = contact(&bed, "round@example.com", "Old");
    let update = vec![UpdateInput::by_id(id, props([("firstname", "New")]))];
    let batch = bed
        .portal
        .batch_update(ObjectType::Contacts, &update)
        .await
        .unwrap();
    assert_eq!(batch.results[0].property("firstname"), Some("New"));

    let by_email = ObjectKey::Unique {
        property: "email".into(),
        value: "round@example.com".into(),
    };
    let got = bed
        .portal
        .get(
            ObjectType::Contacts,
            &by_email,
            &["firstname".into()],
            false,
        )
        .await
        .unwrap();
    assert_eq!((got.id, got.property("firstname")), (id, Some("New")));

    let bad = vec![UpdateInput::by_id(id, props([("no_such_property", "x")]))];
    assert!(matches!(
        bed.portal.batch_update(ObjectType::Contacts, &bad).await,
        Err(ApiError::Validation(_))
    ));

    bed.portal
        .batch_archive(ObjectType::Contacts, &[id])
        .await
        .unwrap();
    let gone = bed
        .portal
        .get(ObjectType::Contacts, &ObjectKey::Id(id), &[], false)
        .await;
    assert!(matches!(gone, Err(ApiError::NotFound(_))), "{gone:?}");
    let archived = bed
        .portal
        .get(ObjectType::Contacts, &ObjectKey::Id(id), &[], true)
        .await
        .unwrap();
    assert!(archived.archived && archived.archived_at.is_some());
    let stats = bed.portal.stats();
    assert_eq!(stats.retries, 0, "4xx are never retried");
}

#[tokio::test]
async fn list_pages_until_the_cursor_runs_out() {
    let bed = start(Setup::default()).await;
    for i in 0..25 {
        contact(&bed, &format!("p{i}@example.com"), "P");
    }
    let mut params = ListParams {
        limit: Some(10),
        properties: vec!["email".into()],
        ..ListParams::default()
    };
    let mut seen = 0;
    let mut pages = 0;
    loop {
        let page = bed
            .portal
            .list_page(ObjectType::Contacts, &params)
            .await
            .unwrap();
        seen += page.results.len();
        pages += 1;
        match page.next_after {
            Some(after) => params.after = Some(after),
            None => break,
        }
    }
    assert_eq!((seen, pages), (25, 3));
    let too_big = ListParams {
        limit: Some(101),
        ..ListParams::default()
    };
    assert!(matches!(
        bed.portal.list_page(ObjectType::Contacts, &too_big).await,
        Err(ApiError::InvalidRequest(_))
    ));
}

#[tokio::test]
async fn search_finds_by_in_filter_on_the_search_lane_only() {
    let bed = start(Setup::default()).await;
    let a = contact(&bed, "s1@example.com", "S");
    let b = contact(&bed, "s2@example.com", "S");
    contact(&bed, "other@example.com", "O");
    bed.admin().flush_search(PORTAL.get()).unwrap();
    let before = bed.portal.budget();
    let request = SearchRequest {
        filter_groups: vec![FilterGroup {
            filters: vec![Filter::in_values(
                "email",
                ["s1@example.com".to_owned(), "s2@example.com".to_owned()],
            )],
        }],
        properties: vec!["email".into()],
        limit: 100,
        ..SearchRequest::default()
    };
    let page = bed
        .portal
        .search(ObjectType::Contacts, &request)
        .await
        .unwrap();
    let mut ids: Vec<HubspotId> = page.results.iter().map(|o| o.id).collect();
    ids.sort_unstable();
    assert_eq!(ids, vec![a, b]);
    assert_eq!((page.total, page.next_after), (2, None));

    let stats = bed.portal.stats();
    assert_eq!((stats.search_requests, stats.general_requests), (1, 0));
    assert_eq!(
        bed.portal.budget().remaining,
        before.remaining,
        "search spends nothing of the general budget"
    );
    let lanes = bed.emulator_stats().requests_by_lane;
    assert_eq!(lanes.get(LaneKind::Search.as_str()), Some(&1));
    assert_eq!(lanes.get(LaneKind::General.as_str()), None);

    let eq = || Filter::new("email", FilterOperator::Eq, "x");
    let too_many = SearchRequest {
        filter_groups: vec![FilterGroup {
            filters: vec![eq(); 7],
        }],
        limit: 10,
        ..SearchRequest::default()
    };
    assert!(matches!(
        bed.portal.search(ObjectType::Contacts, &too_many).await,
        Err(ApiError::InvalidRequest(_))
    ));
}

#[tokio::test]
async fn properties_list_and_create_and_duplicate_is_conflict() {
    let bed = start(Setup::default()).await;
    let all = bed
        .portal
        .list_properties(ObjectType::Companies)
        .await
        .unwrap();
    let domain = all
        .iter()
        .find(|p| p.name == "domain")
        .expect("companies have a domain property");
    assert_eq!(domain.property_type, "string");
    bed.portal
        .ensure_hubsync_properties(ObjectType::Companies)
        .await
        .unwrap();
    let all = bed
        .portal
        .list_properties(ObjectType::Companies)
        .await
        .unwrap();
    let id_prop = all.iter().find(|p| p.name == HUBSYNC_ID_PROPERTY).unwrap();
    assert!(id_prop.has_unique_value);
    let create = hubsync_hubspot::model::PropertyCreate {
        name: HUBSYNC_ORIGIN_PROPERTY.into(),
        label: "again".into(),
        property_type: "string".into(),
        field_type: "text".into(),
        group_name: "companyinformation".into(),
        description: None,
        has_unique_value: false,
    };
    assert!(matches!(
        bed.portal
            .create_property(ObjectType::Companies, &create)
            .await,
        Err(ApiError::Conflict { .. })
    ));
}

#[tokio::test]
async fn associations_v4_create_read_and_archive() {
    let bed = start(Setup::default()).await;
    let c = contact(&bed, "assoc@example.com", "A");
    let company = HubspotId(
        bed.admin()
            .create(
                PORTAL.get(),
                ObjectKind::Company,
                [("name", "Acme"), ("domain", "acme.example")],
                DEFAULT_USER_ID,
            )
            .unwrap(),
    );
    let create = vec![AssociationCreate {
        from: c,
        to: company,
        types: vec![AssociationSpec::hubspot_defined(279)],
    }];
    let created = bed
        .portal
        .batch_create_associations(ObjectType::Contacts, ObjectType::Companies, &create)
        .await
        .unwrap();
    assert!(!created.is_partial(), "{created:?}");

    let read = bed
        .portal
        .batch_read_associations(ObjectType::Contacts, ObjectType::Companies, &[c])
        .await
        .unwrap();
    let links = &read
        .results
        .iter()
        .find(|r| r.from == c)
        .expect("contact read")
        .to;
    assert_eq!(links.len(), 1);
    assert_eq!(links[0].to_object_id, company);
    assert!(links[0].association_types.iter().any(|t| t.type_id == 279));

    let archive = vec![AssociationArchive {
        from: c,
        to: vec![company],
    }];
    bed.portal
        .batch_archive_associations(ObjectType::Contacts, ObjectType::Companies, &archive)
        .await
        .unwrap();
    let read = bed
        .portal
        .batch_read_associations(ObjectType::Contacts, ObjectType::Companies, &[c])
        .await
        .unwrap();
    assert!(read.results.iter().all(|r| r.to.is_empty()), "{read:?}");
}

#[tokio::test]
async fn merge_returns_the_surviving_record() {
    let bed = start(Setup::default()).await;
    let primary = contact(&bed, "keep@example.com", "Keep");
    let other = contact(&bed, "drop@example.com", "Drop");
    let merged = bed
        .portal
        .merge(ObjectType::Contacts, primary, other)
        .await
        .unwrap();
    let again = bed
        .portal
        .get(
            ObjectType::Contacts,
            &ObjectKey::Id(primary),
            &["email".into()],
            false,
        )
        .await
        .unwrap();
    assert_eq!(
        again.id, merged.id,
        "the old id resolves to the merged record"
    );
    // A single-record PATCH accepts the merged-away id and lands on the survivor.
    let updated = bed
        .portal
        .update(
            ObjectType::Contacts,
            &ObjectKey::Id(other),
            &props([("firstname", "Merged")]),
        )
        .await
        .unwrap();
    assert_eq!(
        (updated.id, updated.property("firstname")),
        (merged.id, Some("Merged"))
    );
}

#[tokio::test]
async fn search_by_values_finds_contacts_by_email_in_chunks_and_pages() {
    let bed = start(Setup::default()).await;
    let mut emails = Vec::new();
    for i in 0..120 {
        let email = format!("bulk{i}@example.com");
        contact(&bed, &email, "B");
        emails.push(email.to_uppercase());
    }
    emails.push("nobody@example.com".into());
    bed.admin().flush_search(PORTAL.get()).unwrap();
    let found = bed
        .portal
        .search_by_values(ObjectType::Contacts, "email", &emails, &["email".into()])
        .await
        .unwrap();
    assert_eq!(
        found.len(),
        120,
        "upper-case input matched after lower-casing"
    );
    let stats = bed.portal.stats();
    assert_eq!(
        (stats.search_requests, stats.general_requests),
        (2, 0),
        "121 values: two IN chunks"
    );
}
