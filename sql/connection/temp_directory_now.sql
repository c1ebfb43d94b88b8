-- Where DuckDB spills now (its instance is shared by every connection of the process to the file).
SELECT current_setting('temp_directory');
