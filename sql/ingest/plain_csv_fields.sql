-- A delimited interactions file's text fields, one row per non-empty line after the header, without line numbers (the
-- body of the temp view `staged_interactions` when its plain rows are loaded in one pass, ingest/load_interactions): read by
-- DuckDB's CSV reader in parallel, nothing materialised. Lines with another field count, undecodable or longer than
-- $max_line_bytes go to the fresh table $rejects_table (any such line sends the file to the row-by-row path).
SELECT user_id, item_id, rating, ts
FROM read_csv(
    $path,
    columns = $columns,
    header = false, skip = $header_lines, delim = $delimiter, quote = '', escape = '', nullstr = chr(0),
    auto_detect = false, encoding = $encoding, max_line_size = $max_line_bytes,
    store_rejects = true, rejects_table = $rejects_table, rejects_scan = $rejects_table || '_scans'
);
