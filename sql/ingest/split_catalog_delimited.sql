-- `id<delim>title<delim>genres` lines (MovieLens movies.dat) -> text fields.
CREATE OR REPLACE TEMP TABLE staged_catalog AS
WITH fields AS (
    SELECT line_number, line, string_split(line, $delimiter) AS f
    FROM raw_lines
    WHERE line_number > $header_lines AND trim(coalesce(line, '')) <> ''
)
SELECT
    line_number,
    line AS raw,
    len(f) = 3 AS well_formed,
    nullif(trim(f[1]), '') AS item_id,
    nullif(trim(f[2]), '') AS title,
    [g for g in string_split(f[3], '|') if g <> '' AND g <> '(no genres listed)'] AS genres
FROM fields;
