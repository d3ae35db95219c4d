//! The store: one trait over hubsync's database, with SQLite and PostgreSQL backends, migrations, queues and sync state.
