-- One hash of (user_id, item_id, ts) per row this load inserted (ingest/load_interactions of `plain_rows`), to count distinct keys in polars
-- (tasks/ingest.py: a repeat, or a hash collision, sends the file to the row-by-row path); a fraction of the cost of a
-- DuckDB aggregate over every row.
SELECT hash(user_id, item_id, ts) AS key
FROM interactions
WHERE loaded_at = $loaded_at;
