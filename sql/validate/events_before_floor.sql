-- Stored interactions timestamped before the plausibility floor $min_ts (ingest quarantines such rows), time as text.
SELECT user_id, item_id, rating, ts::VARCHAR AS ts, source
FROM interactions
WHERE ts < $min_ts
ORDER BY interactions.ts, user_id, item_id;
