-- Type the staged catalogue and name, for each unusable row, why (ids: integers written as integers).
CREATE OR REPLACE TEMP TABLE classified_catalog AS
WITH typed AS (
    SELECT *, integer_text(item_id) AS item_id_n
    FROM staged_catalog
)
SELECT
    line_number, raw, item_id_n AS item_id, title, genres,
    TRY_CAST(regexp_extract(title, '\((\d{4})\)\s*$', 1) AS INTEGER) AS year,
    CASE
        WHEN NOT well_formed THEN 'malformed catalogue line'
        WHEN item_id IS NULL THEN 'missing item_id'
        WHEN item_id_n IS NULL THEN format('item_id ''{}'' is not an integer', item_id)
        WHEN title IS NULL THEN 'missing title'
        WHEN row_number() OVER (PARTITION BY item_id_n ORDER BY line_number) > 1 THEN 'duplicate item_id'
    END AS reason
FROM typed
UNION ALL BY NAME
SELECT line_number, raw, reason FROM rejected_lines WHERE line_number > $header_lines;
