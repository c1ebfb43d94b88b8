-- One row per metric and cutoff: the new model next to the model serving before it and to popularity.
WITH previous AS (
    SELECT model_version
    FROM model_runs
    WHERE promoted AND model_version <> $model_version
      AND trained_at < (SELECT trained_at FROM model_runs WHERE model_version = $model_version)
    ORDER BY trained_at DESC
    LIMIT 1
)
SELECT metric, k,
       max(value) FILTER (WHERE model_version = $model_version AND method = 'als') AS new_model,
       max(value) FILTER (WHERE model_version = (SELECT model_version FROM previous) AND method = 'als') AS previous_model,
       max(value) FILTER (WHERE model_version = $model_version AND method = 'popularity') AS popularity
FROM model_metrics
WHERE model_version IN ($model_version, (SELECT model_version FROM previous))
GROUP BY metric, k
ORDER BY metric, k;
