-- A delimited interactions file as text fields, one row per non-empty line after the header, read by DuckDB's
-- CSV reader (parallel, nothing materialised: the body of the temp view `staged_interactions`). Every field is
-- VARCHAR as written (trimmed and typed later, so bad values can be named); quotes are plain characters, so each row is one line and
-- `raw` (the fields joined again; empty fields are '' through the NUL nullstr) is that line exactly. Lines with
-- another field count, undecodable or longer than $max_line_bytes go to the fresh table $rejects_table.
-- `line_number` counts the rows read: ingest/renumber_rows makes it exact when lines were rejected or empty.
SELECT *
FROM (
    SELECT
        row_number() OVER () AS line_number,
        $expected_fields AS n_fields,
        user_id, item_id, rating, ts,
        concat_ws($delimiter, *COLUMNS(*)) AS raw
    FROM read_csv(
        $path,
        columns = $columns,
        header = false, delim = $delimiter, quote = '', escape = '', nullstr = chr(0),
        auto_detect = false, encoding = $encoding, max_line_size = $max_line_bytes,
        store_rejects = true, rejects_table = $rejects_table, rejects_scan = $rejects_table || '_scans'
    )
)
WHERE line_number > $header_lines;
