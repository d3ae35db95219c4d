-- hubsync schema, version 1 (SQLite). Times are INTEGER epoch milliseconds; JSON is TEXT.
-- Never edit a released migration: add the next numbered file instead.

CREATE TABLE portals (
    portal_id     INTEGER PRIMARY KEY,
    name          TEXT    NOT NULL DEFAULT '',
    app_id        INTEGER,
    auth          TEXT    NOT NULL DEFAULT '{}',
    status        TEXT    NOT NULL DEFAULT 'active',
    status_reason TEXT,
    config        TEXT    NOT NULL DEFAULT '{}',
    created_at    INTEGER NOT NULL
);

-- ---------------------------------------------------------------------------------------------
-- App tables: the product's public schema. The app reads and writes them with plain SQL.
-- ---------------------------------------------------------------------------------------------

CREATE TABLE contacts (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    portal_id       INTEGER NOT NULL,
    hubspot_id      TEXT,
    first_name      TEXT,
    last_name       TEXT,
    email_addresses TEXT    NOT NULL DEFAULT '[]',
    phone_numbers   TEXT    NOT NULL DEFAULT '[]',
    title           TEXT,
    company_id      INTEGER,
    owner_id        TEXT,
    lifecycle_stage TEXT,
    custom_fields   TEXT    NOT NULL DEFAULT '{}',
    created_at      INTEGER NOT NULL DEFAULT (CAST(unixepoch('subsec') * 1000 AS INTEGER)),
    updated_at      INTEGER NOT NULL DEFAULT (CAST(unixepoch('subsec') * 1000 AS INTEGER)),
    deleted_at      INTEGER
);
CREATE INDEX contacts_hubspot_id ON contacts (portal_id, hubspot_id);
CREATE INDEX contacts_updated_at ON contacts (portal_id, updated_at);

CREATE TABLE companies (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    portal_id       INTEGER NOT NULL,
    hubspot_id      TEXT,
    name            TEXT,
    domain          TEXT,
    industry        TEXT,
    phone           TEXT,
    address         TEXT,
    employee_count  INTEGER,
    annual_revenue  REAL,
    custom_fields   TEXT    NOT NULL DEFAULT '{}',
    created_at      INTEGER NOT NULL DEFAULT (CAST(unixepoch('subsec') * 1000 AS INTEGER)),
    updated_at      INTEGER NOT NULL DEFAULT (CAST(unixepoch('subsec') * 1000 AS INTEGER)),
    deleted_at      INTEGER
);
CREATE INDEX companies_hubspot_id ON companies (portal_id, hubspot_id);
CREATE INDEX companies_domain ON companies (portal_id, domain);
CREATE INDEX companies_updated_at ON companies (portal_id, updated_at);

CREATE TABLE deals (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    portal_id       INTEGER NOT NULL,
    hubspot_id      TEXT,
    name            TEXT,
    amount          REAL,
    stage           TEXT,
    pipeline        TEXT,
    close_date      TEXT,
    company_id      INTEGER,
    contact_ids     TEXT    NOT NULL DEFAULT '[]',
    custom_fields   TEXT    NOT NULL DEFAULT '{}',
    created_at      INTEGER NOT NULL DEFAULT (CAST(unixepoch('subsec') * 1000 AS INTEGER)),
    updated_at      INTEGER NOT NULL DEFAULT (CAST(unixepoch('subsec') * 1000 AS INTEGER)),
    deleted_at      INTEGER
);
CREATE INDEX deals_hubspot_id ON deals (portal_id, hubspot_id);
CREATE INDEX deals_updated_at ON deals (portal_id, updated_at);

-- ---------------------------------------------------------------------------------------------
-- Change capture. hubsync's own writes insert a row here inside their transaction and delete it
-- before commit; the triggers skip writes made while it exists.
-- ---------------------------------------------------------------------------------------------

CREATE TABLE _hubsync_apply_guard (id INTEGER PRIMARY KEY);

CREATE TABLE outbox (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    portal_id    INTEGER NOT NULL,
    object_type  TEXT    NOT NULL,
    local_id     INTEGER NOT NULL,
    op           TEXT    NOT NULL,
    hubspot_id   TEXT,
    captured_at  INTEGER NOT NULL,
    attempts     INTEGER NOT NULL DEFAULT 0,
    not_before   INTEGER NOT NULL DEFAULT 0,
    locked_until INTEGER,
    locked_by    TEXT
);
CREATE INDEX outbox_order ON outbox (portal_id, id);
CREATE INDEX outbox_record ON outbox (portal_id, object_type, local_id, id);

CREATE TRIGGER contacts_capture_insert AFTER INSERT ON contacts
WHEN NOT EXISTS (SELECT 1 FROM _hubsync_apply_guard)
BEGIN
    INSERT INTO outbox (portal_id, object_type, local_id, op, hubspot_id, captured_at)
    VALUES (NEW.portal_id, 'contacts', NEW.id,
            CASE WHEN NEW.deleted_at IS NULL THEN 'upsert' ELSE 'delete' END,
            NEW.hubspot_id, CAST(unixepoch('subsec') * 1000 AS INTEGER));
END;
CREATE TRIGGER contacts_capture_update AFTER UPDATE ON contacts
WHEN NOT EXISTS (SELECT 1 FROM _hubsync_apply_guard)
     AND (OLD.deleted_at IS NULL OR NEW.deleted_at IS NULL)
BEGIN
    INSERT INTO outbox (portal_id, object_type, local_id, op, hubspot_id, captured_at)
    VALUES (NEW.portal_id, 'contacts', NEW.id,
            CASE WHEN NEW.deleted_at IS NULL THEN 'upsert' ELSE 'delete' END,
            NEW.hubspot_id, CAST(unixepoch('subsec') * 1000 AS INTEGER));
END;
CREATE TRIGGER contacts_capture_delete AFTER DELETE ON contacts
WHEN NOT EXISTS (SELECT 1 FROM _hubsync_apply_guard) AND OLD.deleted_at IS NULL
BEGIN
    INSERT INTO outbox (portal_id, object_type, local_id, op, hubspot_id, captured_at)
    VALUES (OLD.portal_id, 'contacts', OLD.id, 'delete', OLD.hubspot_id,
            CAST(unixepoch('subsec') * 1000 AS INTEGER));
END;

CREATE TRIGGER companies_capture_insert AFTER INSERT ON companies
WHEN NOT EXISTS (SELECT 1 FROM _hubsync_apply_guard)
BEGIN
    INSERT INTO outbox (portal_id, object_type, local_id, op, hubspot_id, captured_at)
    VALUES (NEW.portal_id, 'companies', NEW.id,
            CASE WHEN NEW.deleted_at IS NULL THEN 'upsert' ELSE 'delete' END,
            NEW.hubspot_id, CAST(unixepoch('subsec') * 1000 AS INTEGER));
END;
CREATE TRIGGER companies_capture_update AFTER UPDATE ON companies
WHEN NOT EXISTS (SELECT 1 FROM _hubsync_apply_guard)
     AND (OLD.deleted_at IS NULL OR NEW.deleted_at IS NULL)
BEGIN
    INSERT INTO outbox (portal_id, object_type, local_id, op, hubspot_id, captured_at)
    VALUES (NEW.portal_id, 'companies', NEW.id,
            CASE WHEN NEW.deleted_at IS NULL THEN 'upsert' ELSE 'delete' END,
            NEW.hubspot_id, CAST(unixepoch('subsec') * 1000 AS INTEGER));
END;
CREATE TRIGGER companies_capture_delete AFTER DELETE ON companies
WHEN NOT EXISTS (SELECT 1 FROM _hubsync_apply_guard) AND OLD.deleted_at IS NULL
BEGIN
    INSERT INTO outbox (portal_id, object_type, local_id, op, hubspot_id, captured_at)
    VALUES (OLD.portal_id, 'companies', OLD.id, 'delete', OLD.hubspot_id,
            CAST(unixepoch('subsec') * 1000 AS INTEGER));
END;

CREATE TRIGGER deals_capture_insert AFTER INSERT ON deals
WHEN NOT EXISTS (SELECT 1 FROM _hubsync_apply_guard)
BEGIN
    INSERT INTO outbox (portal_id, object_type, local_id, op, hubspot_id, captured_at)
    VALUES (NEW.portal_id, 'deals', NEW.id,
            CASE WHEN NEW.deleted_at IS NULL THEN 'upsert' ELSE 'delete' END,
            NEW.hubspot_id, CAST(unixepoch('subsec') * 1000 AS INTEGER));
END;
CREATE TRIGGER deals_capture_update AFTER UPDATE ON deals
WHEN NOT EXISTS (SELECT 1 FROM _hubsync_apply_guard)
     AND (OLD.deleted_at IS NULL OR NEW.deleted_at IS NULL)
BEGIN
    INSERT INTO outbox (portal_id, object_type, local_id, op, hubspot_id, captured_at)
    VALUES (NEW.portal_id, 'deals', NEW.id,
            CASE WHEN NEW.deleted_at IS NULL THEN 'upsert' ELSE 'delete' END,
            NEW.hubspot_id, CAST(unixepoch('subsec') * 1000 AS INTEGER));
END;
CREATE TRIGGER deals_capture_delete AFTER DELETE ON deals
WHEN NOT EXISTS (SELECT 1 FROM _hubsync_apply_guard) AND OLD.deleted_at IS NULL
BEGIN
    INSERT INTO outbox (portal_id, object_type, local_id, op, hubspot_id, captured_at)
    VALUES (OLD.portal_id, 'deals', OLD.id, 'delete', OLD.hubspot_id,
            CAST(unixepoch('subsec') * 1000 AS INTEGER));
END;

-- ---------------------------------------------------------------------------------------------
-- Sync state and queues.
-- ---------------------------------------------------------------------------------------------

CREATE TABLE sync_state (
    portal_id         INTEGER NOT NULL,
    object_type       TEXT    NOT NULL,
    local_id          INTEGER NOT NULL,
    hubspot_id        TEXT,
    hubsync_id        TEXT,
    base              TEXT,
    base_ts           TEXT    NOT NULL DEFAULT '{}',
    fp_sent           TEXT,
    fp_received       TEXT,
    last_origin       TEXT,
    remote_updated_at INTEGER,
    synced_at         INTEGER,
    PRIMARY KEY (portal_id, object_type, local_id)
);
CREATE UNIQUE INDEX sync_state_hubspot_id ON sync_state (portal_id, object_type, hubspot_id);

CREATE TABLE id_aliases (
    portal_id      INTEGER NOT NULL,
    object_type    TEXT    NOT NULL,
    old_hubspot_id TEXT    NOT NULL,
    hubspot_id     TEXT    NOT NULL,
    created_at     INTEGER NOT NULL,
    PRIMARY KEY (portal_id, object_type, old_hubspot_id)
);

CREATE TABLE inbox (
    id                INTEGER PRIMARY KEY AUTOINCREMENT,
    portal_id         INTEGER NOT NULL,
    identity          TEXT    NOT NULL,
    subscription_type TEXT    NOT NULL,
    object_type       TEXT,
    object_id         TEXT,
    occurred_at       INTEGER NOT NULL,
    payload           TEXT    NOT NULL,
    received_at       INTEGER NOT NULL,
    attempts          INTEGER NOT NULL DEFAULT 0,
    not_before        INTEGER NOT NULL DEFAULT 0,
    locked_until      INTEGER,
    locked_by         TEXT
);
CREATE UNIQUE INDEX inbox_identity ON inbox (portal_id, identity);
CREATE INDEX inbox_order ON inbox (portal_id, id);

CREATE TABLE dead_letters (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    portal_id   INTEGER NOT NULL,
    source      TEXT    NOT NULL,
    object_type TEXT,
    local_id    INTEGER,
    hubspot_id  TEXT,
    reason      TEXT    NOT NULL,
    category    TEXT    NOT NULL,
    payload     TEXT    NOT NULL DEFAULT 'null',
    attempts    INTEGER NOT NULL DEFAULT 0,
    created_at  INTEGER NOT NULL
);
CREATE INDEX dead_letters_portal ON dead_letters (portal_id, id);

CREATE TABLE conflicts (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    portal_id    INTEGER NOT NULL,
    object_type  TEXT    NOT NULL,
    local_id     INTEGER,
    hubspot_id   TEXT,
    field        TEXT    NOT NULL,
    base         TEXT,
    local_value  TEXT,
    local_ts     INTEGER NOT NULL,
    remote_value TEXT,
    remote_ts    INTEGER NOT NULL,
    policy       TEXT    NOT NULL,
    winner       TEXT    NOT NULL,
    created_at   INTEGER NOT NULL
);
CREATE INDEX conflicts_portal ON conflicts (portal_id, id);

CREATE TABLE cursors (
    portal_id  INTEGER NOT NULL,
    name       TEXT    NOT NULL,
    value      TEXT    NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (portal_id, name)
);

CREATE TABLE counters (
    portal_id INTEGER NOT NULL,
    name      TEXT    NOT NULL,
    value     INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (portal_id, name)
);

CREATE TABLE api_keys (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    key_hash   TEXT    NOT NULL UNIQUE,
    name       TEXT    NOT NULL,
    portal_ids TEXT    NOT NULL DEFAULT '[]',
    created_at INTEGER NOT NULL
);

CREATE TABLE app_endpoints (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    portal_id  INTEGER NOT NULL,
    url        TEXT    NOT NULL,
    secret     TEXT    NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE INDEX app_endpoints_portal ON app_endpoints (portal_id);

CREATE TABLE app_deliveries (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    portal_id       INTEGER NOT NULL,
    endpoint_id     INTEGER NOT NULL REFERENCES app_endpoints (id) ON DELETE CASCADE,
    payload         TEXT    NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    delivered_at    INTEGER,
    created_at      INTEGER NOT NULL
);
CREATE INDEX app_deliveries_due ON app_deliveries (next_attempt_at) WHERE delivered_at IS NULL;

CREATE TABLE leases (
    portal_id  INTEGER PRIMARY KEY,
    owner      TEXT    NOT NULL,
    fence      INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);
