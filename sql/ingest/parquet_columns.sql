-- Column names of a Parquet file (to recognise the interactions contract).
SELECT name FROM parquet_schema($path);
