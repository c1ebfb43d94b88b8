-- Interactions whose item is missing from the catalogue.
SELECT i.* EXCLUDE (loaded_at)
FROM interactions AS i
ANTI JOIN catalog AS c USING (item_id)
ORDER BY i.user_id, i.item_id, i.ts;
