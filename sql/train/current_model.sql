-- Promoted models, newest promotion first: the first whose directory exists serves (tasks/train.py serving_model).
SELECT model_version, ndcg_at_10
FROM model_runs
WHERE promoted
ORDER BY trained_at DESC;
