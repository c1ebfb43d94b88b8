-- The output suite's batch, chunk $chunk of $chunks (whole users, as in interactions_batch.sql): the ranked
-- rows of the run's date, the columns its expectations read and the row's key (evidence is checked in SQL).
-- In stored order (DuckDB keeps insertion order: users as ranked, each user's rows by rank); an ORDER BY here
-- sorted every explanation and cost ~230 MiB at 20M ratings.
SELECT user_id, rank, item_id, score, explanation, ranker
FROM ranked
WHERE run_date = $run_date AND hash(user_id) % CAST($chunks AS UBIGINT) = CAST($chunk AS UBIGINT);
