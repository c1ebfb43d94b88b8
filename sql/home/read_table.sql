-- Every column of one table read whole, folded into one value per column in DuckDB (a damaged block fails its
-- checksum here; nothing is fetched into Python, whatever the table's size).
SELECT bit_xor(hash(COLUMNS(*))) FROM query_table($table);
