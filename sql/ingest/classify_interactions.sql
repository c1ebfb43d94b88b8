-- Type the staged fields (`staged_interactions`) and name, for each unusable row, the first reason it is unusable
-- (one SELECT: the temp view `classified_rows`, materialised by ingest/stage_classified for a file with a row that is
-- not plain, see ingest/plain_interactions).
-- Ids are integers written as integers ('+'/'-' sign allowed; '61.5', '1e2', '0x10', '1_000' are not).
-- Epoch timestamps are read by magnitude: seconds below 1e11, milliseconds below 1e14, microseconds
-- below 1e17, else nanoseconds; a converted row is loaded with a note. Timestamps after $max_ts or
-- before $min_ts (or negative) are quarantined. Duplicates, rejected and empty lines are handled after this
-- one pass (ingest/mark_duplicates, ingest/renumber_rows, ingest/add_rejected_lines); the raw line of a row with a
-- reason is read again afterwards (ingest/raw_lines_of_reasons), only when there is one.
WITH cleaned AS (  -- the common case (plain digits, a number) skips field_text and the patterns
    SELECT
        line_number, n_fields,
        integer_text(user_id) AS user_id_n,
        integer_text(item_id) AS item_id_n,
        TRY_CAST(rating AS DOUBLE) AS rating_n,
        TRY_CAST(ts AS BIGINT) AS ts_int,
        CASE WHEN ts_int::VARCHAR = ts THEN ts ELSE field_text(ts) END AS ts,
        user_id AS user_text, item_id AS item_text, rating AS rating_text
    FROM staged_interactions
),
numeric AS (
    SELECT
        * EXCLUDE (user_text, item_text, rating_text, rating_n),
        CASE WHEN user_id_n IS NULL THEN field_text(user_text) ELSE user_text END AS user_id,
        CASE WHEN item_id_n IS NULL THEN field_text(item_text) ELSE item_text END AS item_id,
        CASE WHEN rating_n IS NULL THEN field_text(rating_text) ELSE rating_text END AS rating,
        coalesce(rating_n, TRY_CAST(field_text(rating_text) AS DOUBLE)) AS rating_n,
        CASE
            WHEN ts_int::VARCHAR = ts THEN ts_int::DOUBLE
            WHEN regexp_full_match(ts, '-?\d+(\.\d+)?') THEN TRY_CAST(ts AS DOUBLE)
        END AS epoch
    FROM cleaned
),
timed AS (
    SELECT
        *,
        CASE
            WHEN epoch IS NULL THEN NULL
            WHEN abs(epoch) < 1e11 THEN 'seconds'
            WHEN abs(epoch) < 1e14 THEN 'milliseconds'
            WHEN abs(epoch) < 1e17 THEN 'microseconds'
            ELSE 'nanoseconds'
        END AS unit,
        CASE
            WHEN epoch IS NULL THEN TRY_CAST(TRY_CAST(ts AS TIMESTAMPTZ) AT TIME ZONE 'UTC' AS TIMESTAMP)
            WHEN ts_int::VARCHAR = ts AND abs(ts_int) < 100000000000 THEN make_timestamp(ts_int * 1000000)  -- seconds, the common case
            ELSE try(make_timestamp(CASE  -- microseconds: integers exactly, fractions via DOUBLE (sub-microsecond rounding)
                WHEN contains(ts, '.') THEN CAST(round(epoch * CASE
                    WHEN abs(epoch) < 1e11 THEN 1e6 WHEN abs(epoch) < 1e14 THEN 1e3 WHEN abs(epoch) < 1e17 THEN 1 ELSE 1e-3 END) AS BIGINT)
                WHEN abs(epoch) < 1e11 THEN CAST(CAST(ts AS HUGEINT) * 1000000 AS BIGINT)
                WHEN abs(epoch) < 1e14 THEN CAST(CAST(ts AS HUGEINT) * 1000 AS BIGINT)
                WHEN abs(epoch) < 1e17 THEN CAST(ts AS BIGINT)
                ELSE CAST((CAST(ts AS HUGEINT) + 500) // 1000 AS BIGINT)
            END))
        END AS ts_n
    FROM numeric
),
judged AS (
    SELECT
        *,
        CASE
            WHEN n_fields <> $expected_fields THEN format('expected {} fields, found {}', $expected_fields, n_fields)
            WHEN user_id IS NULL THEN 'missing user_id'
            WHEN user_id_n IS NULL THEN format('user_id ''{}'' is not an integer', user_id)
            WHEN item_id IS NULL THEN 'missing item_id'
            WHEN item_id_n IS NULL THEN format('item_id ''{}'' is not an integer', item_id)
            WHEN rating IS NULL THEN 'missing rating'
            WHEN rating_n IS NULL OR isnan(rating_n) THEN format('unparsable rating ''{}''', rating)
            WHEN rating_n < $rating_min OR rating_n > $rating_max
                THEN format('rating {} out of range [{}, {}]', rating_n, $rating_min, $rating_max)
            WHEN ts IS NULL THEN 'missing timestamp'
            WHEN ts_n IS NULL THEN format('bad timestamp ''{}''', ts)
            WHEN epoch < 0 THEN format('negative timestamp ''{}''', ts)
            WHEN ts_n > $max_ts THEN format('timestamp {} is in the future (after {})', ts_n, $max_ts)
            WHEN ts_n < $min_ts THEN format('timestamp {} is before the floor {} (RECS_MIN_TIMESTAMP)', ts_n, $min_ts)
            WHEN $check_catalog AND item_id_n NOT IN (SELECT item_id FROM catalog) THEN format('unknown item {}', item_id_n)
        END AS reason
    FROM timed
)
SELECT
    line_number, user_id_n AS user_id, item_id_n AS item_id, rating_n AS rating, ts_n AS ts, reason,
    NULL::VARCHAR AS raw,
    CASE WHEN unit <> 'seconds' THEN format('timestamp in {} since the epoch, converted', unit) END AS note
FROM judged;
