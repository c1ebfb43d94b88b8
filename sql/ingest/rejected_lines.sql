-- The lines the latest read_lines scan could not take, with their exact line number and why.
CREATE OR REPLACE TEMP TABLE rejected_lines AS
SELECT
    line AS line_number,
    csv_line AS raw,
    CASE error_type
        WHEN 'INVALID ENCODING' THEN format('line is not valid {}', $encoding)
        WHEN 'LINE SIZE OVER MAXIMUM' THEN format('line too long (over {} bytes, RECS_MAX_LINE_BYTES)', $max_line_bytes)
        ELSE lower(error_type) || ': ' || error_message
    END AS reason
FROM line_rejects
WHERE scan_id = (SELECT max(scan_id) FROM line_reject_scans);
