-- Users whose ranked row count differs from K, or from their unseen catalogue size when that is smaller.
WITH per_user AS (
    SELECT user_id, count(*) AS rows FROM ranked WHERE run_date = $run_date GROUP BY user_id
),
seen AS (
    SELECT i.user_id, count(DISTINCT i.item_id) AS seen
    FROM interactions AS i
    SEMI JOIN catalog AS c USING (item_id)
    SEMI JOIN per_user AS u USING (user_id)
    GROUP BY i.user_id
),
expected AS (
    SELECT u.user_id, u.rows, least($k, (SELECT count(*) FROM catalog) - coalesce(s.seen, 0)) AS expected_rows
    FROM per_user AS u
    LEFT JOIN seen AS s USING (user_id)
)
SELECT user_id, rows, expected_rows
FROM expected
WHERE rows <> expected_rows
ORDER BY user_id;
