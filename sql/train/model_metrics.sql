SELECT method, metric, k, value FROM model_metrics WHERE model_version = $model_version ORDER BY method, metric, k;
