-- The output suite's batch: the ranked rows of the run's date (evidence is checked in SQL).
SELECT user_id, rank, item_id, score, explanation, ranker, model_version
FROM ranked
WHERE run_date = $run_date
ORDER BY user_id, rank;
