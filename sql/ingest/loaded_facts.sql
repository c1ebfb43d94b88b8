-- The rows this load inserted (ingest/load_interactions of `plain_rows`): their time span and whether every one is within the
-- limits ingest/classify_interactions checks: a timestamp in [$min_ts, $max_ts], a rating in [$rating_min, $rating_max]
-- (NaN is not: DuckDB orders it above every number) and, with $check_catalog, a catalogued item.
WITH loaded AS (
    SELECT * FROM interactions WHERE loaded_at = $loaded_at
)
SELECT
    min(ts) AS first_ts,
    max(ts) AS last_ts,
    coalesce(min(ts) >= $min_ts AND max(ts) <= $max_ts AND min(rating) >= $rating_min AND max(rating) <= $rating_max, true)
        AND NOT ($check_catalog AND EXISTS (SELECT item_id FROM (SELECT DISTINCT item_id FROM loaded) ANTI JOIN catalog USING (item_id)))
        AS within_limits
FROM loaded;
