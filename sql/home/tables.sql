-- Every table of the home's database (the state check reads each once).
SELECT table_name FROM duckdb_tables() WHERE NOT temporary ORDER BY table_name;
