-- Ranked rows citing evidence the user does not like: a like is a latest rating above $like_threshold
-- (the rule training uses, see sql/train/interactions.sql).
WITH likes AS (
    SELECT user_id, item_id
    FROM interactions
    GROUP BY user_id, item_id
    HAVING arg_max(rating, ts) > $like_threshold
),
cited AS (
    SELECT user_id, rank, unnest(evidence_item_ids) AS item_id
    FROM ranked
    WHERE run_date = $run_date
),
ungrounded AS (
    SELECT user_id, rank, list(item_id ORDER BY item_id) AS unliked_evidence
    FROM cited
    ANTI JOIN likes USING (user_id, item_id)
    GROUP BY user_id, rank
)
SELECT r.* EXCLUDE (run_date), u.unliked_evidence
FROM ranked AS r
JOIN ungrounded AS u USING (user_id, rank)
WHERE r.run_date = $run_date
ORDER BY r.user_id, r.rank;
