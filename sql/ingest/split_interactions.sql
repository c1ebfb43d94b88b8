-- Delimited interaction lines -> text fields (typed later, so bad values can be named).
CREATE OR REPLACE TEMP TABLE staged_interactions AS
WITH fields AS (
    SELECT line_number, line, string_split(line, $delimiter) AS f
    FROM raw_lines
    WHERE line_number > $header_lines AND trim(coalesce(line, '')) <> ''
)
SELECT
    line_number,
    line AS raw,
    len(f) AS n_fields,
    nullif(trim(f[$user_col], ' "'), '') AS user_id,
    nullif(trim(f[$item_col], ' "'), '') AS item_id,
    nullif(trim(f[$rating_col], ' "'), '') AS rating,
    nullif(trim(f[$ts_col], ' "'), '') AS ts
FROM fields;
