-- Stored interactions timestamped after $max_ts (ingest quarantines such rows; these predate that), time as text.
SELECT i.user_id, i.item_id, i.rating, i.ts::VARCHAR AS ts, l.source
FROM interactions AS i
LEFT JOIN interaction_loads AS l USING (loaded_at)
WHERE i.ts > $max_ts
ORDER BY i.ts DESC, i.user_id, i.item_id;
