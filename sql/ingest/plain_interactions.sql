-- The staged fields (`staged_interactions`) typed the cheap way, for the common file where every row is plain: ids
-- and timestamp written as DuckDB prints a BIGINT, the timestamp in epoch seconds (the body of the temp view
-- `plain_rows`, loaded by ingest/load_interactions). A plain row within the limits checked after the load
-- (ingest/loaded_facts) is one ingest/classify_interactions loads unconverted, with the same values; a row that is not
-- plain has no reason to give here: error() stops the load, and the file is classified row by row, which names it. (`rating` is only cast: DuckDB
-- may push that TRY_CAST into the CSV reader, which then rejects a line with an unparsable rating, duckdb#23818: a
-- rejected line sends the file to the row-by-row path too.)
WITH typed AS (
    SELECT
        TRY_CAST(user_id AS BIGINT) AS user_n, TRY_CAST(item_id AS BIGINT) AS item_n, TRY_CAST(rating AS DOUBLE) AS rating_n,
        TRY_CAST(ts AS BIGINT) AS ts_int, user_id, item_id, ts
    FROM staged_interactions
)
SELECT
    user_n AS user_id, item_n AS item_id, rating_n AS rating,
    CASE WHEN ts_int BETWEEN 0 AND 99999999999 THEN make_timestamp(ts_int * 1000000) END AS ts,
    CASE
        WHEN user_n::VARCHAR = user_id AND item_n::VARCHAR = item_id AND ts_int::VARCHAR = ts AND ts_int BETWEEN 0 AND 99999999999
             AND rating_n IS NOT NULL
        THEN NULL
        ELSE error('a row that is not plain: the file is classified row by row')
    END AS reason
FROM typed;
