-- Ranked rows citing evidence the user does not like (likes as in schema.sql: latest rating above $like_threshold),
-- judged from the ratings of the cited (user, item) pairs only: an aggregate over the whole history took ~1 GiB at 20M.
WITH cited AS (
    SELECT user_id, rank, unnest(evidence_item_ids) AS item_id
    FROM ranked
    WHERE run_date = $run_date
),
cited_ratings AS (
    SELECT * FROM interactions SEMI JOIN cited USING (user_id, item_id)
),
ungrounded AS (
    SELECT user_id, rank, list(item_id ORDER BY item_id) AS unliked_evidence
    FROM cited
    ANTI JOIN likes($like_threshold, ratings := 'cited_ratings') AS l USING (user_id, item_id)
    GROUP BY user_id, rank
)
SELECT r.* EXCLUDE (run_date), u.unliked_evidence
FROM ranked AS r
JOIN ungrounded AS u USING (user_id, rank)
WHERE r.run_date = $run_date
ORDER BY r.user_id, r.rank;
