-- hubsync schema, version 5 (PostgreSQL): the merge base of association fields.
--
-- Association fields of the unified model (contacts.company_id, deals.company_id,
-- deals.contact_ids) are synced through HubSpot's associations API, not as properties. For each
-- record and field this table keeps the HubSpot ids of the associated records HubSpot held when
-- the field was last synced (a JSON array of id strings, sorted), so that an association change
-- on either side goes through the same three-way logic as a property change.

CREATE TABLE association_state (
    portal_id   BIGINT NOT NULL,
    object_type TEXT   NOT NULL,
    local_id    BIGINT NOT NULL,
    field       TEXT   NOT NULL,
    targets     TEXT   NOT NULL DEFAULT '[]',
    synced_at   BIGINT NOT NULL,
    PRIMARY KEY (portal_id, object_type, local_id, field)
);
