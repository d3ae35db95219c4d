//! The embedded schema migrations, one list per backend. Each file is applied once, in
//! version order, and recorded in `_sqlx_migrations` with its checksum; opening a database
//! again applies only the versions it lacks. A released file is never edited: a schema change
//! is a new numbered file, so an older database is upgraded in place, never wiped.

use sqlx::SqlSafeStr;
use sqlx::migrate::{Migration, MigrationType, Migrator};

/// One migration: version, description, SQL.
type Step = (i64, &'static str, &'static str);

const SQLITE: &[Step] = &[
    (
        1,
        "init",
        include_str!("../migrations/sqlite/0001_init.sql"),
    ),
    (
        2,
        "list order index",
        include_str!("../migrations/sqlite/0002_list_order_index.sql"),
    ),
    (
        3,
        "app timestamps",
        include_str!("../migrations/sqlite/0003_app_timestamps.sql"),
    ),
    (
        5,
        "association state",
        include_str!("../migrations/sqlite/0005_association_state.sql"),
    ),
    (
        6,
        "outbox lease index",
        include_str!("../migrations/sqlite/0006_outbox_leased_index.sql"),
    ),
];

const POSTGRES: &[Step] = &[
    (
        1,
        "init",
        include_str!("../migrations/postgres/0001_init.sql"),
    ),
    (
        2,
        "list order index",
        include_str!("../migrations/postgres/0002_list_order_index.sql"),
    ),
    (
        3,
        "app timestamps",
        include_str!("../migrations/postgres/0003_app_timestamps.sql"),
    ),
    (
        5,
        "association state",
        include_str!("../migrations/postgres/0005_association_state.sql"),
    ),
    (
        6,
        "outbox lease index",
        include_str!("../migrations/postgres/0006_outbox_leased_index.sql"),
    ),
];

fn migrator(steps: &[Step]) -> Migrator {
    Migrator::with_migrations(
        steps
            .iter()
            .map(|&(version, description, sql)| {
                Migration::new(
                    version,
                    description.into(),
                    MigrationType::Simple,
                    sql.into_sql_str(),
                    false,
                )
            })
            .collect(),
    )
}

/// The SQLite migrations.
pub fn sqlite() -> Migrator {
    migrator(SQLITE)
}

/// The PostgreSQL migrations.
pub fn postgres() -> Migrator {
    migrator(POSTGRES)
}

#[cfg(test)]
mod tests {
    use sqlx::Row;
    use sqlx::sqlite::{SqliteConnectOptions, SqlitePool};

    use super::*;

    async fn sqlite_pool(dir: &tempfile::TempDir) -> SqlitePool {
        let options = SqliteConnectOptions::new()
            .filename(dir.path().join("hubsync.db"))
            .create_if_missing(true);
        SqlitePool::connect_with(options)
            .await
            .expect("open sqlite")
    }

    #[tokio::test]
    async fn list_pages_walk_the_portal_id_index_without_sorting() {
        let dir = tempfile::tempdir().expect("tempdir");
        let pool = sqlite_pool(&dir).await;
        sqlite().run(&pool).await.expect("migrate");
        for table in ["contacts", "companies", "deals"] {
            let sql = format!(
                "EXPLAIN QUERY PLAN SELECT * FROM {table} WHERE portal_id = 1 AND id > 5 \
                 AND deleted_at IS NULL ORDER BY id LIMIT 100"
            );
            let plan: Vec<String> = sqlx::query(sqlx::AssertSqlSafe(sql))
                .fetch_all(&pool)
                .await
                .expect("explain")
                .iter()
                .map(|row| row.get::<String, _>("detail"))
                .collect();
            let plan = plan.join("\n");
            assert!(
                plan.contains(&format!("USING INDEX {table}_portal_order")),
                "{table}: {plan}"
            );
            assert!(!plan.contains("TEMP B-TREE"), "{table} sorts: {plan}");
        }
    }

    #[tokio::test]
    async fn a_version_1_database_upgrades_keeping_rows_ids_and_capture() {
        let dir = tempfile::tempdir().expect("tempdir");
        let pool = sqlite_pool(&dir).await;
        migrator(&SQLITE[..1])
            .run(&pool)
            .await
            .expect("migrate to 1");
        // Rows written by version 1 (explicit timestamps), and a deleted row above them whose
        // id must never be handed out again.
        sqlx::query("INSERT INTO _hubsync_apply_guard (id) VALUES (1)")
            .execute(&pool)
            .await
            .expect("guard");
        sqlx::query(
            "INSERT INTO contacts (portal_id, first_name, created_at, updated_at) \
             VALUES (7, 'Kept', 5, 5), (7, 'Gone', 6, 6)",
        )
        .execute(&pool)
        .await
        .expect("insert");
        sqlx::query("DELETE FROM contacts WHERE first_name = 'Gone'")
            .execute(&pool)
            .await
            .expect("delete");
        sqlx::query("DELETE FROM _hubsync_apply_guard")
            .execute(&pool)
            .await
            .expect("unguard");

        sqlite().run(&pool).await.expect("upgrade");

        let kept: (i64, String, i64) =
            sqlx::query_as("SELECT id, first_name, updated_at FROM contacts")
                .fetch_one(&pool)
                .await
                .expect("kept row");
        assert_eq!(kept, (1, "Kept".to_owned(), 5), "rows and ids survive");
        sqlx::query("INSERT INTO contacts (portal_id, first_name) VALUES (7, 'New')")
            .execute(&pool)
            .await
            .expect("plain insert");
        let (id, created_at): (i64, i64) =
            sqlx::query_as("SELECT id, created_at FROM contacts WHERE first_name = 'New'")
                .fetch_one(&pool)
                .await
                .expect("new row");
        assert_eq!(id, 3, "a deleted id is not reused");
        assert!(created_at > 1_700_000_000_000, "created_at defaults to now");
        let captured: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox WHERE local_id = 3")
            .fetch_one(&pool)
            .await
            .expect("outbox");
        assert_eq!(captured, 1, "capture triggers were recreated");
        let triggers: i64 =
            sqlx::query_scalar("SELECT count(*) FROM sqlite_master WHERE sql LIKE '%subsec%'")
                .fetch_one(&pool)
                .await
                .expect("schema");
        assert_eq!(triggers, 0, "no default or trigger needs SQLite 3.42");
    }
}
