-- Stored interactions timestamped after $max_ts (ingest quarantines such rows; these predate that), time as text.
SELECT user_id, item_id, rating, ts::VARCHAR AS ts, source
FROM interactions_with_source() AS i
WHERE i.ts > $max_ts
ORDER BY i.ts DESC, user_id, item_id;
