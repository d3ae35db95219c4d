//! The backend conformance suite: the same behavioural tests, in [`cases`], run against SQLite
//! (a temporary file) and PostgreSQL (a database created for the test and dropped after it).
//!
//! PostgreSQL is taken from `HUBSYNC_TEST_PG_URL` (default `postgres://postgres@127.0.0.1:5432`).
//! When no server answers, the PostgreSQL tests print `skipping PostgreSQL: …` and pass, except
//! under `CI=true`, where a missing server fails them.

mod cases;

use std::future::Future;
use std::sync::Arc;

use sqlx::Connection;

use crate::db::{Arg, Backend, PgDb, Sql, SqliteDb};
use crate::{PgStore, SqliteStore, Store};

/// The database as the app sees it: plain SQL on its own connections.
#[derive(Debug, Clone)]
pub enum AppDb {
    Sqlite(SqliteDb),
    Postgres(PgDb),
}

impl AppDb {
    /// Runs one statement of app SQL (autocommit), as the app would.
    pub async fn exec(&self, sql: &'static str, args: Vec<Arg>) {
        let result = match self {
            AppDb::Sqlite(db) => db.read(Sql::Static(sql), args).await,
            AppDb::Postgres(db) => db.read(Sql::Static(sql), args).await,
        };
        if let Err(e) = result {
            panic!("app sql failed: {e}: {sql}");
        }
    }
}

/// A store under test and the app's view of the same database.
pub struct Harness {
    pub store: Arc<dyn Store>,
    pub app: AppDb,
    /// Opens the same database again (a second process starting up).
    reopen_url: String,
    _dir: Option<tempfile::TempDir>,
}

impl Harness {
    /// A second store on the same database, migrations run again.
    pub async fn reopen(&self) -> Arc<dyn Store> {
        crate::connect(&self.reopen_url).await.expect("reopen")
    }
}

async fn sqlite() -> Option<(Harness, Option<Teardown>)> {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("hubsync.db").display()
    );
    let store = SqliteStore::open(&url).await.expect("open sqlite");
    let app = AppDb::Sqlite(store.db.clone());
    Some((
        Harness {
            store: Arc::new(store),
            app,
            reopen_url: url,
            _dir: Some(dir),
        },
        None,
    ))
}

/// Drops the test's PostgreSQL database.
pub struct Teardown {
    admin_url: String,
    database: String,
}

impl Teardown {
    async fn run(self) {
        let Ok(mut admin) = sqlx::PgConnection::connect(&self.admin_url).await else {
            return;
        };
        let drop = format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", self.database);
        if let Err(e) = sqlx::raw_sql(sqlx::AssertSqlSafe(drop))
            .execute(&mut admin)
            .await
        {
            eprintln!("could not drop test database {}: {e}", self.database);
        }
    }
}

async fn postgres() -> Option<(Harness, Option<Teardown>)> {
    let base = std::env::var("HUBSYNC_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".to_owned());
    let admin_url = format!("{base}/postgres");
    let connect = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        sqlx::PgConnection::connect(&admin_url),
    )
    .await;
    let mut admin = match connect {
        Ok(Ok(conn)) => conn,
        Ok(Err(e)) => return skip_postgres(&e.to_string()),
        Err(_) => return skip_postgres("connection timed out"),
    };
    let database = format!("hubsync_test_{}", uuid::Uuid::new_v4().simple());
    let create = format!("CREATE DATABASE \"{database}\"");
    sqlx::raw_sql(sqlx::AssertSqlSafe(create))
        .execute(&mut admin)
        .await
        .expect("create test database");
    let url = format!("{base}/{database}");
    let store = PgStore::connect(&url).await.expect("connect postgres");
    let app = AppDb::Postgres(store.db.clone());
    Some((
        Harness {
            store: Arc::new(store),
            app,
            reopen_url: url,
            _dir: None,
        },
        Some(Teardown {
            admin_url,
            database,
        }),
    ))
}

fn skip_postgres<T>(reason: &str) -> Option<T> {
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("PostgreSQL is required under CI=true but did not answer: {reason}");
    }
    eprintln!("skipping PostgreSQL: {reason}");
    None
}

/// Runs one case on a fresh harness, then tears it down (even when the case panics).
async fn run<S, SF, C, CF>(setup: S, case: C)
where
    S: FnOnce() -> SF,
    SF: Future<Output = Option<(Harness, Option<Teardown>)>>,
    C: FnOnce(Harness) -> CF,
    CF: Future<Output = ()> + Send + 'static,
{
    let Some((harness, teardown)) = setup().await else {
        return;
    };
    let store = harness.store.clone();
    let outcome = tokio::spawn(case(harness)).await;
    store.close().await;
    drop(store);
    if let Some(teardown) = teardown {
        teardown.run().await;
    }
    if let Err(e) = outcome {
        if e.is_panic() {
            std::panic::resume_unwind(e.into_panic());
        }
        panic!("test task failed: {e}");
    }
}

/// Expands into one `#[tokio::test]` per case for a backend.
macro_rules! conformance_suite {
    ($setup:path) => {
        conformance_suite!(@cases $setup;
            app_writes_are_captured_by_triggers,
            soft_delete_is_captured_as_delete,
            hubsync_applies_are_not_captured,
            claims_coalesce_all_items_of_a_record,
            claims_walk_past_busy_records_to_fill_the_batch,
            ack_keeps_items_captured_during_the_push,
            a_claimed_record_is_not_claimed_twice,
            expired_claims_are_claimed_again_after_a_crash,
            released_claims_are_claimable_at_once,
            retryable_failure_waits_until_retry_at,
            failed_push_is_dead_lettered_and_can_be_retried_or_dropped,
            failed_inbound_event_is_dead_lettered_and_retried_into_the_inbox,
            inbox_stores_a_redelivered_event_once,
            large_deliveries_are_stored_once_per_event,
            large_ack_batches_record_every_record,
            inbox_claims_recover_after_a_crash,
            apply_inbound_creates_and_updates_rows_with_sync_state,
            apply_is_refused_when_its_record_changed_since_the_plan,
            update_ack_keeps_base_fields_it_did_not_write,
            inbound_delete_soft_deletes_the_row,
            merge_aliases_old_ids_to_the_survivor,
            merge_repoints_a_local_row_when_the_survivor_has_none,
            conflicts_are_recorded_and_listed_newest_first,
            cursors_counters_and_queue_depths,
            records_roundtrip_through_the_unified_model,
            list_records_filters_and_pages,
            find_by_key_matches_any_email_ignoring_case,
            ensure_hubsync_id_is_generated_once,
            leases_fence_out_a_stale_owner,
            lease_renewals_do_not_wait_for_fenced_writes,
            app_webhook_deliveries_are_durable,
            portals_and_api_keys,
            migrations_rerun_on_an_existing_database,
            records_written_through_the_store_are_captured,
            malformed_app_json_is_readable_for_dead_lettering,
            a_capture_wakes_a_waiting_worker,
            plain_sql_writes_without_timestamps_get_them_and_are_captured_once,
            numeric_filters_on_custom_fields_compare_numbers,
            email_and_text_filters_ignore_case,
            records_load_with_their_sync_states,
        );
    };
    (@cases $setup:path; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $case() {
                super::run($setup, super::cases::$case).await;
            }
        )*
    };
}

mod sqlite_backend {
    conformance_suite!(super::sqlite);
}

mod postgres_backend {
    conformance_suite!(super::postgres);
}
