-- Usable rows of $classified (a file's classified rows, or its `plain_rows` loaded in one pass) into interactions; a row
-- already there (same user, item, timestamp) is kept as it is. An anti-join (no index to build or hold) against the
-- rows in the file's time span [$first_ts, $last_ts] only: the hash table holds what may overlap (nothing for a new
-- day's file), never the whole history. A one-pass load learns that span only afterwards: NULL bounds compare nothing,
-- and an overlap found then loads the file again with them (tasks/ingest.py). Returns the count.
INSERT INTO interactions
SELECT c.user_id, c.item_id, c.rating, c.ts, $loaded_at
FROM query_table($classified) AS c
ANTI JOIN (
    SELECT user_id, item_id, ts FROM interactions WHERE ts BETWEEN $first_ts AND $last_ts
) AS i ON i.user_id = c.user_id AND i.item_id = c.item_id AND i.ts = c.ts
WHERE c.reason IS NULL;
