-- Stored interactions timestamped before the plausibility floor $min_ts (ingest quarantines such rows), time as text.
SELECT i.user_id, i.item_id, i.rating, i.ts::VARCHAR AS ts, l.source
FROM interactions AS i
LEFT JOIN interaction_loads AS l USING (loaded_at)
WHERE i.ts < $min_ts
ORDER BY i.ts, i.user_id, i.item_id;
