-- Claims every claimable item of up to $5 records, oldest record first, for worker $2 until $3.
-- $1 portal, $4 now, $6 how many of the oldest items to scan for records. Each item comes back
-- as one JSON cell (the driver's cost is per column). A record with an item
-- still leased to someone else is skipped whole, so one record is never pushed twice at once.
UPDATE outbox
SET locked_by = $2, locked_until = $3, attempts = attempts + 1
WHERE portal_id = $1
  AND not_before <= $4
  AND (locked_until IS NULL OR locked_until < $4)
  AND (object_type, local_id) IN (
      SELECT c.object_type, c.local_id
      FROM (
          SELECT o.id, o.object_type, o.local_id
          FROM outbox o
          WHERE o.portal_id = $1
            AND o.not_before <= $4
            AND (o.locked_until IS NULL OR o.locked_until < $4)
            AND NOT EXISTS (
                SELECT 1 FROM outbox x
                WHERE x.portal_id = o.portal_id
                  AND x.object_type = o.object_type
                  AND x.local_id = o.local_id
                  AND x.locked_until >= $4)
          ORDER BY o.id
          LIMIT $6
      ) c
      GROUP BY c.object_type, c.local_id
      ORDER BY min(c.id)
      LIMIT $5)
RETURNING json_object('id', id, 'object_type', object_type, 'local_id', local_id, 'op', op,
                      'hubspot_id', hubspot_id, 'captured_at', captured_at, 'attempts', attempts) AS item
