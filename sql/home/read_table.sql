-- Every row and column of one table (a damaged block fails its checksum here).
SELECT * FROM query_table($table);
