-- Users of this run_date still to rank, cut into batches of $batch_size: never ranked, or ranked in a
-- way this run would not publish — by another ranker (an llm run re-ranks users that fell back to
-- ALS, from the LLM cache where it can), or to another number of rows than min(K, their candidates).
WITH wanted AS (
    SELECT user_id, least($k, count(*)) AS rows
    FROM candidates
    WHERE run_date = $run_date
    GROUP BY user_id
),
done AS (
    SELECT user_id, count(*) AS rows, bool_and(ranker = $ranker) AS same_ranker
    FROM ranked
    WHERE run_date = $run_date
    GROUP BY user_id
),
todo AS (
    SELECT w.user_id
    FROM wanted AS w
    LEFT JOIN done AS d USING (user_id)
    WHERE d.user_id IS NULL OR d.rows <> w.rows OR NOT d.same_ranker
),
numbered AS (
    SELECT user_id, (row_number() OVER (ORDER BY user_id) - 1) // $batch_size AS batch FROM todo
)
SELECT list(user_id ORDER BY user_id) AS users
FROM numbered
GROUP BY batch
ORDER BY batch;
