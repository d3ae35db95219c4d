-- hubsync schema, version 1 (PostgreSQL). Times are BIGINT epoch milliseconds; JSON is JSONB.
-- Never edit a released migration: add the next numbered file instead.

CREATE FUNCTION hubsync_now_ms() RETURNS BIGINT LANGUAGE sql STABLE AS
$$ SELECT (extract(epoch FROM clock_timestamp()) * 1000)::BIGINT $$;

CREATE TABLE portals (
    portal_id     BIGINT PRIMARY KEY,
    name          TEXT   NOT NULL DEFAULT '',
    app_id        BIGINT,
    auth          JSONB  NOT NULL DEFAULT '{}',
    status        TEXT   NOT NULL DEFAULT 'active',
    status_reason TEXT,
    config        JSONB  NOT NULL DEFAULT '{}',
    created_at    BIGINT NOT NULL
);

-- ---------------------------------------------------------------------------------------------
-- App tables: the product's public schema. The app reads and writes them with plain SQL.
-- ---------------------------------------------------------------------------------------------

CREATE TABLE contacts (
    id              BIGSERIAL PRIMARY KEY,
    portal_id       BIGINT NOT NULL,
    hubspot_id      TEXT,
    first_name      TEXT,
    last_name       TEXT,
    email_addresses JSONB  NOT NULL DEFAULT '[]',
    phone_numbers   JSONB  NOT NULL DEFAULT '[]',
    title           TEXT,
    company_id      BIGINT,
    owner_id        TEXT,
    lifecycle_stage TEXT,
    custom_fields   JSONB  NOT NULL DEFAULT '{}',
    created_at      BIGINT NOT NULL DEFAULT hubsync_now_ms(),
    updated_at      BIGINT NOT NULL DEFAULT hubsync_now_ms(),
    deleted_at      BIGINT
);
CREATE INDEX contacts_hubspot_id ON contacts (portal_id, hubspot_id);
CREATE INDEX contacts_updated_at ON contacts (portal_id, updated_at);
CREATE INDEX contacts_emails ON contacts USING gin (email_addresses jsonb_path_ops);

CREATE TABLE companies (
    id              BIGSERIAL PRIMARY KEY,
    portal_id       BIGINT NOT NULL,
    hubspot_id      TEXT,
    name            TEXT,
    domain          TEXT,
    industry        TEXT,
    phone           TEXT,
    address         JSONB,
    employee_count  BIGINT,
    annual_revenue  NUMERIC,
    custom_fields   JSONB  NOT NULL DEFAULT '{}',
    created_at      BIGINT NOT NULL DEFAULT hubsync_now_ms(),
    updated_at      BIGINT NOT NULL DEFAULT hubsync_now_ms(),
    deleted_at      BIGINT
);
CREATE INDEX companies_hubspot_id ON companies (portal_id, hubspot_id);
CREATE INDEX companies_domain ON companies (portal_id, lower(domain));
CREATE INDEX companies_updated_at ON companies (portal_id, updated_at);

CREATE TABLE deals (
    id              BIGSERIAL PRIMARY KEY,
    portal_id       BIGINT NOT NULL,
    hubspot_id      TEXT,
    name            TEXT,
    amount          NUMERIC,
    stage           TEXT,
    pipeline        TEXT,
    close_date      TEXT,
    company_id      BIGINT,
    contact_ids     JSONB  NOT NULL DEFAULT '[]',
    custom_fields   JSONB  NOT NULL DEFAULT '{}',
    created_at      BIGINT NOT NULL DEFAULT hubsync_now_ms(),
    updated_at      BIGINT NOT NULL DEFAULT hubsync_now_ms(),
    deleted_at      BIGINT
);
CREATE INDEX deals_hubspot_id ON deals (portal_id, hubspot_id);
CREATE INDEX deals_updated_at ON deals (portal_id, updated_at);

-- ---------------------------------------------------------------------------------------------
-- Change capture. hubsync's own transactions run `SET LOCAL hubsync.applying = 'on'`; the
-- trigger skips their writes. Every capture wakes the engine with NOTIFY hubsync_outbox.
-- ---------------------------------------------------------------------------------------------

CREATE TABLE outbox (
    id           BIGSERIAL PRIMARY KEY,
    portal_id    BIGINT NOT NULL,
    object_type  TEXT   NOT NULL,
    local_id     BIGINT NOT NULL,
    op           TEXT   NOT NULL,
    hubspot_id   TEXT,
    captured_at  BIGINT NOT NULL,
    attempts     INTEGER NOT NULL DEFAULT 0,
    not_before   BIGINT NOT NULL DEFAULT 0,
    locked_until BIGINT,
    locked_by    TEXT
);
CREATE INDEX outbox_order ON outbox (portal_id, id);
CREATE INDEX outbox_record ON outbox (portal_id, object_type, local_id, id);

CREATE FUNCTION hubsync_capture() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF coalesce(current_setting('hubsync.applying', true), '') = 'on' THEN
        RETURN NULL;
    END IF;
    IF TG_OP = 'DELETE' THEN
        IF OLD.deleted_at IS NOT NULL THEN
            RETURN NULL;
        END IF;
        INSERT INTO outbox (portal_id, object_type, local_id, op, hubspot_id, captured_at)
        VALUES (OLD.portal_id, TG_ARGV[0], OLD.id, 'delete', OLD.hubspot_id, hubsync_now_ms());
        PERFORM pg_notify('hubsync_outbox', OLD.portal_id::text);
        RETURN NULL;
    END IF;
    IF TG_OP = 'UPDATE' AND OLD.deleted_at IS NOT NULL AND NEW.deleted_at IS NOT NULL THEN
        RETURN NULL;
    END IF;
    INSERT INTO outbox (portal_id, object_type, local_id, op, hubspot_id, captured_at)
    VALUES (NEW.portal_id, TG_ARGV[0], NEW.id,
            CASE WHEN NEW.deleted_at IS NULL THEN 'upsert' ELSE 'delete' END,
            NEW.hubspot_id, hubsync_now_ms());
    PERFORM pg_notify('hubsync_outbox', NEW.portal_id::text);
    RETURN NULL;
END
$$;

CREATE TRIGGER contacts_capture AFTER INSERT OR UPDATE OR DELETE ON contacts
    FOR EACH ROW EXECUTE FUNCTION hubsync_capture('contacts');
CREATE TRIGGER companies_capture AFTER INSERT OR UPDATE OR DELETE ON companies
    FOR EACH ROW EXECUTE FUNCTION hubsync_capture('companies');
CREATE TRIGGER deals_capture AFTER INSERT OR UPDATE OR DELETE ON deals
    FOR EACH ROW EXECUTE FUNCTION hubsync_capture('deals');

-- ---------------------------------------------------------------------------------------------
-- Sync state and queues.
-- ---------------------------------------------------------------------------------------------

CREATE TABLE sync_state (
    portal_id         BIGINT NOT NULL,
    object_type       TEXT   NOT NULL,
    local_id          BIGINT NOT NULL,
    hubspot_id        TEXT,
    hubsync_id        TEXT,
    base              JSONB,
    base_ts           JSONB  NOT NULL DEFAULT '{}',
    fp_sent           TEXT,
    fp_received       TEXT,
    last_origin       TEXT,
    remote_updated_at BIGINT,
    synced_at         BIGINT,
    PRIMARY KEY (portal_id, object_type, local_id)
);
CREATE UNIQUE INDEX sync_state_hubspot_id ON sync_state (portal_id, object_type, hubspot_id);

CREATE TABLE id_aliases (
    portal_id      BIGINT NOT NULL,
    object_type    TEXT   NOT NULL,
    old_hubspot_id TEXT   NOT NULL,
    hubspot_id     TEXT   NOT NULL,
    created_at     BIGINT NOT NULL,
    PRIMARY KEY (portal_id, object_type, old_hubspot_id)
);

CREATE TABLE inbox (
    id                BIGSERIAL PRIMARY KEY,
    portal_id         BIGINT NOT NULL,
    identity          TEXT   NOT NULL,
    subscription_type TEXT   NOT NULL,
    object_type       TEXT,
    object_id         TEXT,
    occurred_at       BIGINT NOT NULL,
    payload           JSONB  NOT NULL,
    received_at       BIGINT NOT NULL,
    attempts          INTEGER NOT NULL DEFAULT 0,
    not_before        BIGINT NOT NULL DEFAULT 0,
    locked_until      BIGINT,
    locked_by         TEXT
);
CREATE UNIQUE INDEX inbox_identity ON inbox (portal_id, identity);
CREATE INDEX inbox_order ON inbox (portal_id, id);

CREATE TABLE dead_letters (
    id          BIGSERIAL PRIMARY KEY,
    portal_id   BIGINT NOT NULL,
    source      TEXT   NOT NULL,
    object_type TEXT,
    local_id    BIGINT,
    hubspot_id  TEXT,
    reason      TEXT   NOT NULL,
    category    TEXT   NOT NULL,
    payload     JSONB  NOT NULL DEFAULT 'null',
    attempts    INTEGER NOT NULL DEFAULT 0,
    created_at  BIGINT NOT NULL
);
CREATE INDEX dead_letters_portal ON dead_letters (portal_id, id);

CREATE TABLE conflicts (
    id           BIGSERIAL PRIMARY KEY,
    portal_id    BIGINT NOT NULL,
    object_type  TEXT   NOT NULL,
    local_id     BIGINT,
    hubspot_id   TEXT,
    field        TEXT   NOT NULL,
    base         JSONB,
    local_value  JSONB,
    local_ts     BIGINT NOT NULL,
    remote_value JSONB,
    remote_ts    BIGINT NOT NULL,
    policy       TEXT   NOT NULL,
    winner       TEXT   NOT NULL,
    created_at   BIGINT NOT NULL
);
CREATE INDEX conflicts_portal ON conflicts (portal_id, id);

CREATE TABLE cursors (
    portal_id  BIGINT NOT NULL,
    name       TEXT   NOT NULL,
    value      TEXT   NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (portal_id, name)
);

CREATE TABLE counters (
    portal_id BIGINT NOT NULL,
    name      TEXT   NOT NULL,
    value     BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (portal_id, name)
);

CREATE TABLE api_keys (
    id         BIGSERIAL PRIMARY KEY,
    key_hash   TEXT   NOT NULL UNIQUE,
    name       TEXT   NOT NULL,
    portal_ids JSONB  NOT NULL DEFAULT '[]',
    created_at BIGINT NOT NULL
);

CREATE TABLE app_endpoints (
    id         BIGSERIAL PRIMARY KEY,
    portal_id  BIGINT NOT NULL,
    url        TEXT   NOT NULL,
    secret     TEXT   NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX app_endpoints_portal ON app_endpoints (portal_id);

CREATE TABLE app_deliveries (
    id              BIGSERIAL PRIMARY KEY,
    portal_id       BIGINT NOT NULL,
    endpoint_id     BIGINT NOT NULL REFERENCES app_endpoints (id) ON DELETE CASCADE,
    payload         JSONB  NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    delivered_at    BIGINT,
    created_at      BIGINT NOT NULL
);
CREATE INDEX app_deliveries_due ON app_deliveries (next_attempt_at) WHERE delivered_at IS NULL;

CREATE TABLE leases (
    portal_id  BIGINT PRIMARY KEY,
    owner      TEXT   NOT NULL,
    fence      BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
