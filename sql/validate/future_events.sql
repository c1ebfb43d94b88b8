-- Interactions timestamped after $max_ts (the moment of the check).
SELECT * EXCLUDE (loaded_at)
FROM interactions
WHERE ts > $max_ts
ORDER BY ts DESC, user_id, item_id;
