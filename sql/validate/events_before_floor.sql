-- Stored interactions timestamped before the plausibility floor $min_ts (ingest quarantines such rows), time as text.
SELECT user_id, item_id, rating, ts::VARCHAR AS ts, source
FROM interactions_with_source() AS i
WHERE i.ts < $min_ts
ORDER BY i.ts, user_id, item_id;
