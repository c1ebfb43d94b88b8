INSERT OR REPLACE INTO model_metrics SELECT $model_version, method, metric, k, value FROM new_metrics;
