-- The output suite's batch, chunk $chunk of $chunks (whole users, as in interactions_batch.sql): the ranked
-- rows of the run's date (evidence is checked in SQL).
SELECT user_id, rank, item_id, score, explanation, ranker, model_version
FROM ranked
WHERE run_date = $run_date AND hash(user_id) % CAST($chunks AS UBIGINT) = CAST($chunk AS UBIGINT)
ORDER BY user_id, rank;
