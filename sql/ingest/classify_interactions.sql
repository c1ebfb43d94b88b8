-- Type the staged fields and name, for each unusable row, the first reason it is unusable.
CREATE OR REPLACE TEMP TABLE classified_interactions AS
WITH typed AS (
    SELECT
        s.*,
        TRY_CAST(user_id AS BIGINT) AS user_id_n,
        TRY_CAST(item_id AS BIGINT) AS item_id_n,
        TRY_CAST(rating AS DOUBLE) AS rating_n,
        CASE
            WHEN regexp_full_match(ts, '-?\d+(\.\d+)?') THEN
                try(make_timestamp(CAST(TRY_CAST(ts AS DOUBLE) * 1000000 AS BIGINT)))
            ELSE TRY_CAST(TRY_CAST(ts AS TIMESTAMPTZ) AT TIME ZONE 'UTC' AS TIMESTAMP)
        END AS ts_n
    FROM staged_interactions AS s
),
judged AS (
    SELECT
        *,
        CASE
            WHEN n_fields <> $expected_fields THEN format('expected {} fields, found {}', $expected_fields, n_fields)
            WHEN user_id IS NULL THEN 'missing user_id'
            WHEN user_id_n IS NULL THEN format('unparsable user_id ''{}''', user_id)
            WHEN item_id IS NULL THEN 'missing item_id'
            WHEN item_id_n IS NULL THEN format('unparsable item_id ''{}''', item_id)
            WHEN rating IS NULL THEN 'missing rating'
            WHEN rating_n IS NULL OR isnan(rating_n) THEN format('unparsable rating ''{}''', rating)
            WHEN rating_n < $rating_min OR rating_n > $rating_max
                THEN format('rating {} out of range [{}, {}]', rating_n, $rating_min, $rating_max)
            WHEN ts IS NULL THEN 'missing timestamp'
            WHEN ts_n IS NULL THEN format('bad timestamp ''{}''', ts)
            WHEN $check_catalog AND item_id_n NOT IN (SELECT item_id FROM catalog) THEN format('unknown item {}', item_id_n)
        END AS reason
    FROM typed
)
SELECT
    line_number, raw, user_id_n AS user_id, item_id_n AS item_id, rating_n AS rating, ts_n AS ts,
    coalesce(
        reason,
        CASE WHEN row_number() OVER (PARTITION BY user_id_n, item_id_n, ts_n ORDER BY line_number) > 1
             THEN 'duplicate of an earlier row (user_id, item_id, timestamp)' END
    ) AS reason
FROM judged;
