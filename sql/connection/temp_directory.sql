-- Where DuckDB spills.
SET temp_directory = $temp_directory;
