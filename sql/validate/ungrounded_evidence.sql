-- Ranked rows citing evidence the user does not like (likes as in schema.sql: latest rating above $like_threshold).
WITH cited AS (
    SELECT user_id, rank, unnest(evidence_item_ids) AS item_id
    FROM ranked
    WHERE run_date = $run_date
),
ungrounded AS (
    SELECT user_id, rank, list(item_id ORDER BY item_id) AS unliked_evidence
    FROM cited
    ANTI JOIN likes($like_threshold) AS l USING (user_id, item_id)
    GROUP BY user_id, rank
)
SELECT r.* EXCLUDE (run_date), u.unliked_evidence
FROM ranked AS r
JOIN ungrounded AS u USING (user_id, rank)
WHERE r.run_date = $run_date
ORDER BY r.user_id, r.rank;
