-- Usable rows into interactions; a row already there (same user, item, timestamp) is kept as it is.
INSERT INTO interactions
SELECT user_id, item_id, rating, ts, $source, $loaded_at
FROM classified_interactions
WHERE reason IS NULL
ON CONFLICT DO NOTHING;
