-- Interactions whose item is missing from the catalogue.
SELECT i.user_id, i.item_id, i.rating, i.ts, l.source
FROM interactions AS i
ANTI JOIN catalog AS c USING (item_id)
LEFT JOIN interaction_loads AS l USING (loaded_at)
ORDER BY i.user_id, i.item_id, i.ts;
