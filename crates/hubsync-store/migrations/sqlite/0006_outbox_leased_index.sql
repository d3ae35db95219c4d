-- The leased outbox items only (a partial index: items waiting for a claim are not in it), so
-- that a claim can tell whether a record has an item leased to another worker without reading
-- the record's items.
CREATE INDEX outbox_leased ON outbox (portal_id, object_type, local_id, locked_until)
    WHERE locked_until IS NOT NULL;
