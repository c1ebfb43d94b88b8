-- The most frequent quarantine reason of a classified staging table and its count.
SELECT reason, count(*) AS rows
FROM query_table($classified)
WHERE reason IS NOT NULL
GROUP BY reason
ORDER BY rows DESC, reason
LIMIT 1;
