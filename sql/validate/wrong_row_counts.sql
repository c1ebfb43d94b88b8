-- Users whose ranked row count differs from K, or from their candidate count when that is smaller:
-- a user gets only real unseen items, so fewer than K when the model and the catalogue offer fewer
-- (sql/validate/seen_items.sql and unknown_ranked_items.sql check that they are real and unseen).
WITH per_user AS (
    SELECT user_id, count(*) AS rows FROM ranked WHERE run_date = $run_date GROUP BY user_id
),
offered AS (
    SELECT user_id, count(*) AS candidates FROM candidates WHERE run_date = $run_date GROUP BY user_id
)
SELECT u.user_id, u.rows, least($k, coalesce(o.candidates, 0)) AS expected_rows
FROM per_user AS u
LEFT JOIN offered AS o USING (user_id)
WHERE u.rows <> least($k, coalesce(o.candidates, 0))
ORDER BY u.user_id;
