-- hubsync schema, version 3 (SQLite): app-table timestamps that work for plain SQL on any SQLite.
--
-- Version 1 defaulted created_at/updated_at (and stamped outbox.captured_at) with
-- unixepoch('subsec'), which needs SQLite 3.42; on an older library (e.g. the sqlite3 shell of
-- Debian 12, 3.40) it yields NULL, so an app INSERT without timestamps failed with
-- "NOT NULL constraint failed: contacts.created_at". SQLite cannot alter a column default, so
-- each app table is recreated (rows and ids copied, the AUTOINCREMENT high-water mark kept) with
-- a julianday()-based default, and its indexes and capture triggers are recreated with it.
--
-- New: an app UPDATE that leaves updated_at unchanged gets it bumped (to now, and always past the
-- old value) by a `*_touch_updated_at` trigger. The trigger's own UPDATE runs under the apply
-- guard, so the capture triggers record the app's write exactly once.

-- ---------------------------------------------------------------------------------------------
-- contacts
-- ---------------------------------------------------------------------------------------------

ALTER TABLE contacts RENAME TO contacts_v1;

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
    created_at      INTEGER NOT NULL DEFAULT (CAST(ROUND((julianday('now') - 2440587.5) * 86400000.0) AS INTEGER)),
    updated_at      INTEGER NOT NULL DEFAULT (CAST(ROUND((julianday('now') - 2440587.5) * 86400000.0) AS INTEGER)),
    deleted_at      INTEGER
);

INSERT INTO contacts SELECT * FROM contacts_v1;
DELETE FROM sqlite_sequence WHERE name = 'contacts';
INSERT INTO sqlite_sequence (name, seq) SELECT 'contacts', seq FROM sqlite_sequence WHERE name = 'contacts_v1';
DROP TABLE contacts_v1;

CREATE INDEX contacts_hubspot_id ON contacts (portal_id, hubspot_id);
CREATE INDEX contacts_updated_at ON contacts (portal_id, updated_at);
CREATE INDEX contacts_portal_order ON contacts (portal_id, id);

CREATE TRIGGER contacts_capture_insert AFTER INSERT ON contacts
WHEN NOT EXISTS (SELECT 1 FROM _hubsync_apply_guard)
BEGIN
    INSERT INTO outbox (portal_id, object_type, local_id, op, hubspot_id, captured_at)
    VALUES (NEW.portal_id, 'contacts', NEW.id,
            CASE WHEN NEW.deleted_at IS NULL THEN 'upsert' ELSE 'delete' END,
            NEW.hubspot_id, CAST(ROUND((julianday('now') - 2440587.5) * 86400000.0) AS INTEGER));
END;
CREATE TRIGGER contacts_capture_update AFTER UPDATE ON contacts
WHEN NOT EXISTS (SELECT 1 FROM _hubsync_apply_guard)
     AND (OLD.deleted_at IS NULL OR NEW.deleted_at IS NULL)
BEGIN
    INSERT INTO outbox (portal_id, object_type, local_id, op, hubspot_id, captured_at)
    VALUES (NEW.portal_id, 'contacts', NEW.id,
            CASE WHEN NEW.deleted_at IS NULL THEN 'upsert' ELSE 'delete' END,
            NEW.hubspot_id, CAST(ROUND((julianday('now') - 2440587.5) * 86400000.0) AS INTEGER));
END;
CREATE TRIGGER contacts_capture_delete AFTER DELETE ON contacts
WHEN NOT EXISTS (SELECT 1 FROM _hubsync_apply_guard) AND OLD.deleted_at IS NULL
BEGIN
    INSERT INTO outbox (portal_id, object_type, local_id, op, hubspot_id, captured_at)
    VALUES (OLD.portal_id, 'contacts', OLD.id, 'delete', OLD.hubspot_id,
            CAST(ROUND((julianday('now') - 2440587.5) * 86400000.0) AS INTEGER));
END;
CREATE TRIGGER contacts_touch_updated_at AFTER UPDATE ON contacts
WHEN NEW.updated_at = OLD.updated_at AND NOT EXISTS (SELECT 1 FROM _hubsync_apply_guard)
BEGIN
    INSERT INTO _hubsync_apply_guard (id) VALUES (1);
    UPDATE contacts SET updated_at = max(CAST(ROUND((julianday('now') - 2440587.5) * 86400000.0) AS INTEGER), OLD.updated_at + 1)
    WHERE id = NEW.id;
    DELETE FROM _hubsync_apply_guard;
END;

-- ---------------------------------------------------------------------------------------------
-- companies
-- ---------------------------------------------------------------------------------------------

ALTER TABLE companies RENAME TO companies_v1;

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
    created_at      INTEGER NOT NULL DEFAULT (CAST(ROUND((julianday('now') - 2440587.5) * 86400000.0) AS INTEGER)),
    updated_at      INTEGER NOT NULL DEFAULT (CAST(ROUND((julianday('now') - 2440587.5) * 86400000.0) AS INTEGER)),
    deleted_at      INTEGER
);

INSERT INTO companies SELECT * FROM companies_v1;
DELETE FROM sqlite_sequence WHERE name = 'companies';
INSERT INTO sqlite_sequence (name, seq) SELECT 'companies', seq FROM sqlite_sequence WHERE name = 'companies_v1';
DROP TABLE companies_v1;

CREATE INDEX companies_hubspot_id ON companies (portal_id, hubspot_id);
CREATE INDEX companies_domain ON companies (portal_id, domain);
CREATE INDEX companies_updated_at ON companies (portal_id, updated_at);
CREATE INDEX companies_portal_order ON companies (portal_id, id);

CREATE TRIGGER companies_capture_insert AFTER INSERT ON companies
WHEN NOT EXISTS (SELECT 1 FROM _hubsync_apply_guard)
BEGIN
    INSERT INTO outbox (portal_id, object_type, local_id, op, hubspot_id, captured_at)
    VALUES (NEW.portal_id, 'companies', NEW.id,
            CASE WHEN NEW.deleted_at IS NULL THEN 'upsert' ELSE 'delete' END,
            NEW.hubspot_id, CAST(ROUND((julianday('now') - 2440587.5) * 86400000.0) AS INTEGER));
END;
CREATE TRIGGER companies_capture_update AFTER UPDATE ON companies
WHEN NOT EXISTS (SELECT 1 FROM _hubsync_apply_guard)
     AND (OLD.deleted_at IS NULL OR NEW.deleted_at IS NULL)
BEGIN
    INSERT INTO outbox (portal_id, object_type, local_id, op, hubspot_id, captured_at)
    VALUES (NEW.portal_id, 'companies', NEW.id,
            CASE WHEN NEW.deleted_at IS NULL THEN 'upsert' ELSE 'delete' END,
            NEW.hubspot_id, CAST(ROUND((julianday('now') - 2440587.5) * 86400000.0) AS INTEGER));
END;
CREATE TRIGGER companies_capture_delete AFTER DELETE ON companies
WHEN NOT EXISTS (SELECT 1 FROM _hubsync_apply_guard) AND OLD.deleted_at IS NULL
BEGIN
    INSERT INTO outbox (portal_id, object_type, local_id, op, hubspot_id, captured_at)
    VALUES (OLD.portal_id, 'companies', OLD.id, 'delete', OLD.hubspot_id,
            CAST(ROUND((julianday('now') - 2440587.5) * 86400000.0) AS INTEGER));
END;
CREATE TRIGGER companies_touch_updated_at AFTER UPDATE ON companies
WHEN NEW.updated_at = OLD.updated_at AND NOT EXISTS (SELECT 1 FROM _hubsync_apply_guard)
BEGIN
    INSERT INTO _hubsync_apply_guard (id) VALUES (1);
    UPDATE companies SET updated_at = max(CAST(ROUND((julianday('now') - 2440587.5) * 86400000.0) AS INTEGER), OLD.updated_at + 1)
    WHERE id = NEW.id;
    DELETE FROM _hubsync_apply_guard;
END;

-- ---------------------------------------------------------------------------------------------
-- deals
-- ---------------------------------------------------------------------------------------------

ALTER TABLE deals RENAME TO deals_v1;

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
    created_at      INTEGER NOT NULL DEFAULT (CAST(ROUND((julianday('now') - 2440587.5) * 86400000.0) AS INTEGER)),
    updated_at      INTEGER NOT NULL DEFAULT (CAST(ROUND((julianday('now') - 2440587.5) * 86400000.0) AS INTEGER)),
    deleted_at      INTEGER
);

INSERT INTO deals SELECT * FROM deals_v1;
DELETE FROM sqlite_sequence WHERE name = 'deals';
INSERT INTO sqlite_sequence (name, seq) SELECT 'deals', seq FROM sqlite_sequence WHERE name = 'deals_v1';
DROP TABLE deals_v1;

CREATE INDEX deals_hubspot_id ON deals (portal_id, hubspot_id);
CREATE INDEX deals_updated_at ON deals (portal_id, updated_at);
CREATE INDEX deals_portal_order ON deals (portal_id, id);

CREATE TRIGGER deals_capture_insert AFTER INSERT ON deals
WHEN NOT EXISTS (SELECT 1 FROM _hubsync_apply_guard)
BEGIN
    INSERT INTO outbox (portal_id, object_type, local_id, op, hubspot_id, captured_at)
    VALUES (NEW.portal_id, 'deals', NEW.id,
            CASE WHEN NEW.deleted_at IS NULL THEN 'upsert' ELSE 'delete' END,
            NEW.hubspot_id, CAST(ROUND((julianday('now') - 2440587.5) * 86400000.0) AS INTEGER));
END;
CREATE TRIGGER deals_capture_update AFTER UPDATE ON deals
WHEN NOT EXISTS (SELECT 1 FROM _hubsync_apply_guard)
     AND (OLD.deleted_at IS NULL OR NEW.deleted_at IS NULL)
BEGIN
    INSERT INTO outbox (portal_id, object_type, local_id, op, hubspot_id, captured_at)
    VALUES (NEW.portal_id, 'deals', NEW.id,
            CASE WHEN NEW.deleted_at IS NULL THEN 'upsert' ELSE 'delete' END,
            NEW.hubspot_id, CAST(ROUND((julianday('now') - 2440587.5) * 86400000.0) AS INTEGER));
END;
CREATE TRIGGER deals_capture_delete AFTER DELETE ON deals
WHEN NOT EXISTS (SELECT 1 FROM _hubsync_apply_guard) AND OLD.deleted_at IS NULL
BEGIN
    INSERT INTO outbox (portal_id, object_type, local_id, op, hubspot_id, captured_at)
    VALUES (OLD.portal_id, 'deals', OLD.id, 'delete', OLD.hubspot_id,
            CAST(ROUND((julianday('now') - 2440587.5) * 86400000.0) AS INTEGER));
END;
CREATE TRIGGER deals_touch_updated_at AFTER UPDATE ON deals
WHEN NEW.updated_at = OLD.updated_at AND NOT EXISTS (SELECT 1 FROM _hubsync_apply_guard)
BEGIN
    INSERT INTO _hubsync_apply_guard (id) VALUES (1);
    UPDATE deals SET updated_at = max(CAST(ROUND((julianday('now') - 2440587.5) * 86400000.0) AS INTEGER), OLD.updated_at + 1)
    WHERE id = NEW.id;
    DELETE FROM _hubsync_apply_guard;
END;
