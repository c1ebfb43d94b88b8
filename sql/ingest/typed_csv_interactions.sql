-- A delimited interactions file whose rows ingest/plain_keys found all plain and distinct, typed by DuckDB's CSV reader
-- itself (the body of the temp view `typed_rows`, read once by ingest/load_interactions): a plain field parses to the
-- value ingest/plain_interactions gave it, and the reader's own casts are the cheapest pass over the file. Other
-- fields stay text; the lines the first read rejected are rejected again, into the fresh table $rejects_table.
SELECT user_id, item_id, rating, make_timestamp(ts * 1000000) AS ts, NULL::VARCHAR AS reason
FROM read_csv(
    $path,
    columns = $columns,
    header = false, skip = $header_lines, delim = $delimiter, quote = '', escape = '', nullstr = chr(0),
    auto_detect = false, encoding = $encoding, max_line_size = $max_line_bytes,
    store_rejects = true, rejects_table = $rejects_table, rejects_scan = $rejects_table || '_scans'
);
