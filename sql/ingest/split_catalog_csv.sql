-- `item_id,title,genres` CSV lines (title may be quoted and contain commas) -> text fields.
CREATE OR REPLACE TEMP TABLE staged_catalog AS
WITH fields AS (
    SELECT
        line_number, line,
        regexp_extract(line, '^\s*([^,]*),\s*("(?:[^"]|"")*"|[^,]*),(.*)$', ['item_id', 'title', 'genres']) AS f
    FROM raw_lines
    WHERE line_number > $header_lines AND trim(coalesce(line, '')) <> ''
)
SELECT
    line_number,
    line AS raw,
    f.item_id <> '' AS well_formed,
    nullif(trim(f.item_id), '') AS item_id,
    nullif(trim(CASE WHEN f.title LIKE '"%"' THEN replace(f.title[2:-2], '""', '"') ELSE f.title END), '') AS title,
    [g for g in string_split(trim(f.genres, ' "'), '|') if g <> '' AND g <> '(no genres listed)'] AS genres
FROM fields;
