-- Usable rows into interactions; a row already there (same user, item, timestamp) is kept as it is (an anti-join:
-- no index to build or hold).
INSERT INTO interactions
SELECT user_id, item_id, rating, ts, $source, $loaded_at
FROM classified_interactions AS c
WHERE reason IS NULL
  AND NOT EXISTS (SELECT 1 FROM interactions AS i WHERE i.user_id = c.user_id AND i.item_id = c.item_id AND i.ts = c.ts);
