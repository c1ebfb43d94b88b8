-- Interactions whose item is missing from the catalogue.
SELECT i.*
FROM interactions_with_source() AS i
ANTI JOIN catalog AS c USING (item_id)
ORDER BY i.user_id, i.item_id, i.ts;
