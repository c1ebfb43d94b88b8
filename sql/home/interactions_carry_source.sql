-- Whether interactions still names its file on every row (a home from before interaction_loads).
SELECT count(*) > 0
FROM duckdb_columns()
WHERE database_name = current_database() AND schema_name = 'main' AND table_name = 'interactions' AND column_name = 'source';
