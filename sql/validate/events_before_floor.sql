-- Interactions timestamped before the plausibility floor $min_ts.
SELECT * EXCLUDE (loaded_at)
FROM interactions
WHERE ts < $min_ts
ORDER BY ts, user_id, item_id;
