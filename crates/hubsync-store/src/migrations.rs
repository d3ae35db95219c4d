//! The embedded schema migrations, one list per backend. Each file is applied once, in
//! version order, and recorded in `_sqlx_migrations` with its checksum; opening a database
//! again applies only the versions it lacks. A released file is never edited: a schema change
//! is a new numbered file, so an older database is upgraded in place, never wiped.

use sqlx::SqlSafeStr;
use sqlx::migrate::{Migration, MigrationType, Migrator};

/// One migration: version, description, SQL.
type Step = (i64, &'static str, &'static str);

const SQLITE: &[Step] = &[(
    1,
    "init",
    include_str!("../migrations/sqlite/0001_init.sql"),
)];

const POSTGRES: &[Step] = &[(
    1,
    "init",
    include_str!("../migrations/postgres/0001_init.sql"),
)];

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
