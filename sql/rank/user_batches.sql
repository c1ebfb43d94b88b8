-- Users with candidates on this run_date and not yet ranked, cut into batches of $batch_size.
WITH todo AS (
    SELECT DISTINCT user_id FROM candidates WHERE run_date = $run_date
    EXCEPT
    SELECT DISTINCT user_id FROM ranked WHERE run_date = $run_date
),
numbered AS (
    SELECT user_id, (row_number() OVER (ORDER BY user_id) - 1) // $batch_size AS batch FROM todo
)
SELECT list(user_id ORDER BY user_id) AS users
FROM numbered
GROUP BY batch
ORDER BY batch;
