-- The lines a read_lines scan could not take ($rejects_table), with their exact line number and why.
CREATE OR REPLACE TEMP TABLE rejected_lines AS
SELECT
    line AS line_number,
    csv_line AS raw,
    CASE error_type
        WHEN 'INVALID ENCODING' THEN format('line is not valid {}', $encoding)
        WHEN 'LINE SIZE OVER MAXIMUM' THEN format('line too long (over {} bytes, RECS_MAX_LINE_BYTES)', $max_line_bytes)
        ELSE lower(error_type) || ': ' || error_message
    END AS reason
FROM query_table($rejects_table);
