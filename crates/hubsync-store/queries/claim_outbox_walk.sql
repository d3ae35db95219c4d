-- One page of the claim's walk (both backends): the claimable items after item $3, oldest
-- first, each with whether its record has an item leased to someone else, looked up in the
-- partial index `outbox_leased` (it holds leased items only).
-- $1 portal, $2 now, $3 the last item id of the previous page (0 at first), $4 page size.
SELECT o.id, o.object_type, o.local_id,
       CASE WHEN EXISTS (
           SELECT 1 FROM outbox AS x
           WHERE x.portal_id = o.portal_id
             AND x.object_type = o.object_type
             AND x.local_id = o.local_id
             AND x.locked_until >= $2) THEN 1 ELSE 0 END AS leased
FROM outbox AS o
WHERE o.portal_id = $1
  AND o.id > $3
  AND o.not_before <= $2
  AND (o.locked_until IS NULL OR o.locked_until < $2)
ORDER BY o.id
LIMIT $4
