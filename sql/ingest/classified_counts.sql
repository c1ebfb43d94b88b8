SELECT count(*) AS rows_read, count(*) FILTER (WHERE reason IS NOT NULL) AS rows_quarantined
FROM query_table($classified);
