-- A Parquet interactions file -> the same text fields as a delimited file (the body of the temp view `staged_interactions`).
SELECT
    file_row_number + 1 AS line_number,
    to_json(p)::VARCHAR AS raw,
    4 AS n_fields,
    user_id::VARCHAR AS user_id,
    item_id::VARCHAR AS item_id,
    COLUMNS($rating_column)::VARCHAR AS rating,
    CASE WHEN typeof("timestamp") LIKE 'TIMESTAMP%' THEN strftime("timestamp"::TIMESTAMP, '%Y-%m-%dT%H:%M:%S')
         ELSE "timestamp"::VARCHAR END AS ts
FROM read_parquet($path, file_row_number = true) AS p;
