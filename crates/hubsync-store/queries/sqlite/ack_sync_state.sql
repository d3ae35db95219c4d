-- Records the sync state of acknowledged pushes. $1 portal, $2 JSON array of
-- {t: object type, l: local id, h: HubSpot id, b: base, ts: base times, fp: fingerprint sent,
--  o: origin marker, r: HubSpot's last-modified time}, $3 now.
INSERT INTO sync_state (portal_id, object_type, local_id, hubspot_id, base, base_ts, fp_sent,
                        last_origin, remote_updated_at, synced_at)
SELECT $1, j.value ->> 't', j.value ->> 'l', j.value ->> 'h', j.value -> 'b', j.value -> 'ts',
       j.value ->> 'fp', j.value ->> 'o', j.value ->> 'r', $3
FROM json_each($2) j
WHERE true
ON CONFLICT (portal_id, object_type, local_id) DO UPDATE SET
    hubspot_id = excluded.hubspot_id,
    base = excluded.base,
    base_ts = excluded.base_ts,
    fp_sent = excluded.fp_sent,
    last_origin = excluded.last_origin,
    remote_updated_at = coalesce(excluded.remote_updated_at, sync_state.remote_updated_at),
    synced_at = excluded.synced_at
