-- The lines a read could not take ($rejects_table, one row per rejected field), one row per line with its exact
-- number and why: another field count than $expected_fields, undecodable in $encoding, longer than $max_line_bytes.
-- A line of blanks only gets no reason (it is skipped, like an empty line).
CREATE OR REPLACE TEMP TABLE rejected_lines AS
WITH errors AS (  -- after an empty line DuckDB's csv_line starts with that line's newline: not part of this line
    SELECT *, ltrim(csv_line, chr(10) || chr(13)) AS text FROM query_table($rejects_table)
)
SELECT DISTINCT ON (line)
    line AS line_number,
    text AS raw,
    CASE
        WHEN trim(text) = '' AND error_type IN ('MISSING COLUMNS', 'TOO MANY COLUMNS') THEN NULL
        WHEN error_type IN ('MISSING COLUMNS', 'TOO MANY COLUMNS')
            THEN format('expected {} fields, found {}', $expected_fields, len(string_split(text, $delimiter)))
        WHEN error_type = 'INVALID ENCODING' THEN format('line is not valid {}', $encoding)
        WHEN error_type = 'LINE SIZE OVER MAXIMUM' THEN format('line too long (over {} bytes, RECS_MAX_LINE_BYTES)', $max_line_bytes)
        ELSE lower(error_type) || ': ' || error_message
    END AS reason
FROM errors
ORDER BY line, error_type NOT IN ('INVALID ENCODING', 'LINE SIZE OVER MAXIMUM'), column_idx;  -- the line's own fault first
