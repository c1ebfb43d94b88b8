-- MovieLens 100k u.item: id|title|release|video release|url|19 genre flags, named by u.genre.
CREATE OR REPLACE TEMP TABLE staged_catalog AS
WITH fields AS (
    SELECT line_number, line, string_split(line, '|') AS f
    FROM raw_lines
    WHERE trim(coalesce(line, '')) <> ''
)
SELECT
    line_number,
    line AS raw,
    len(f) = 5 + len($genre_names) AS well_formed,
    nullif(trim(f[1]), '') AS item_id,
    nullif(trim(f[2]), '') AS title,
    [$genre_names[i] for i in range(1, len($genre_names) + 1) if f[5 + i] = '1' AND $genre_names[i] <> 'unknown'] AS genres
FROM fields;
