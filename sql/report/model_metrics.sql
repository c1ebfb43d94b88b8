-- One row per metric and cutoff: ALS next to popularity, and the lift.
SELECT metric, k,
       max(value) FILTER (WHERE method = 'als') AS als,
       max(value) FILTER (WHERE method = 'popularity') AS popularity,
       als / nullif(popularity, 0) AS lift
FROM model_metrics
WHERE model_version = $model_version
GROUP BY metric, k
ORDER BY metric, k;
