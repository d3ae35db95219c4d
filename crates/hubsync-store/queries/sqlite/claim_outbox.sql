-- Selects every claimable item of up to $3 records, oldest record first. The caller then
-- leases exactly these items, in the same BEGIN IMMEDIATE transaction.
-- $1 portal, $2 now, $3 records, $4 how many of the oldest items to scan for records. A record
-- with an item still leased to someone else is skipped whole, so one record is never pushed
-- twice at once.
SELECT id, object_type, local_id, op, hubspot_id, captured_at, attempts + 1 AS attempts
FROM outbox
WHERE portal_id = $1
  AND not_before <= $2
  AND (locked_until IS NULL OR locked_until < $2)
  AND (object_type, local_id) IN (
      SELECT c.object_type, c.local_id
      FROM (
          SELECT o.id, o.object_type, o.local_id
          FROM outbox o
          WHERE o.portal_id = $1
            AND o.not_before <= $2
            AND (o.locked_until IS NULL OR o.locked_until < $2)
            AND NOT EXISTS (
                SELECT 1 FROM outbox x
                WHERE x.portal_id = o.portal_id
                  AND x.object_type = o.object_type
                  AND x.local_id = o.local_id
                  AND x.locked_until >= $2)
          ORDER BY o.id
          LIMIT $4
      ) c
      GROUP BY c.object_type, c.local_id
      ORDER BY min(c.id)
      LIMIT $3)
