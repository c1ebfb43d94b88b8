-- The plain rows of a file (`plain_rows`) into interactions in one pass, as DuckDB's reader parses them; the first row
-- that is not plain stops the statement (error(): the ingest then classifies the file row by row). A row an earlier
-- load holds (same user, item, timestamp) is left out: an anti-join against the rows in the file's time span
-- [$first_ts, $last_ts], known only when an earlier attempt found such rows (else NULL: nothing to compare, one pass).
-- Returns the count.
INSERT INTO interactions
SELECT p.user_id, p.item_id, p.rating, p.ts, $source, $loaded_at
FROM plain_rows AS p
ANTI JOIN (
    SELECT user_id, item_id, ts FROM interactions WHERE ts BETWEEN $first_ts AND $last_ts
) AS i ON i.user_id = p.user_id AND i.item_id = p.item_id AND i.ts = p.ts
WHERE CASE WHEN p.plain THEN true ELSE error('a row that is not plain: the file is classified row by row') END;
