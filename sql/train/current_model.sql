-- The promoted model serving now (newest promotion wins).
SELECT model_version, ndcg_at_10
FROM model_runs
WHERE promoted
ORDER BY trained_at DESC
LIMIT 1;
