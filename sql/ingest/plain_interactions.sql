-- The staged fields (`staged_interactions`) typed the cheap way, for the common file where every row is plain: ids
-- and timestamp written as DuckDB prints a BIGINT, the timestamp in epoch seconds within [$min_ts, $max_ts], a rating
-- within [$rating_min, $rating_max] and, with $check_catalog, a catalogued item. A plain row passes every check of
-- ingest/classify_interactions unconverted (one SELECT: the temp view `plain_rows`, read by ingest/plain_keys and, when
-- every row is plain, by ingest/load_interactions). Any other row gets a placeholder reason: the file is then
-- classified row by row, which names the real one. (`rating` is only cast: the row-number window of the staged view
-- keeps DuckDB 2.0 from pushing that TRY_CAST into the CSV reader, which would reject the line, duckdb#23818.)
WITH typed AS (
    SELECT
        TRY_CAST(user_id AS BIGINT) AS user_n, TRY_CAST(item_id AS BIGINT) AS item_n, TRY_CAST(rating AS DOUBLE) AS rating_n,
        TRY_CAST(ts AS BIGINT) AS ts_int, user_id, item_id, ts
    FROM staged_interactions
),
seconds AS (
    SELECT
        *,
        CASE WHEN ts_int::VARCHAR = ts AND ts_int BETWEEN 0 AND 99999999999 THEN make_timestamp(ts_int * 1000000) END AS ts_n
    FROM typed
)
SELECT
    user_n AS user_id, item_n AS item_id, rating_n AS rating, ts_n AS ts,
    CASE
        WHEN user_n::VARCHAR = user_id AND item_n::VARCHAR = item_id AND ts_n BETWEEN $min_ts AND $max_ts
             AND rating_n BETWEEN $rating_min AND $rating_max AND (NOT $check_catalog OR item_n IN (SELECT item_id FROM catalog))
        THEN NULL
        ELSE 'not plain: to be classified'
    END AS reason
FROM seconds;
