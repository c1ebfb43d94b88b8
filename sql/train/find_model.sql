SELECT model_version, promoted, decision, ndcg_at_10 FROM model_runs WHERE model_version = $model_version;
