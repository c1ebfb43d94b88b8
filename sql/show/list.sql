-- One user's published list of one night: rank, title, explanation, evidence titles (in evidence order), ranker.
WITH evidence AS (
    SELECT r.rank, list(display_title(e.title) ORDER BY u.position) AS evidence
    FROM ranked AS r, unnest(r.evidence_item_ids) WITH ORDINALITY AS u(item_id, position)
    JOIN catalog AS e ON e.item_id = u.item_id
    WHERE r.run_date = $run_date AND r.user_id = $user_id
    GROUP BY r.rank
)
SELECT r.rank, display_title(c.title) AS title, r.explanation, coalesce(v.evidence, []) AS evidence, r.ranker
FROM ranked AS r
JOIN catalog AS c USING (item_id)
LEFT JOIN evidence AS v USING (rank)
WHERE r.run_date = $run_date AND r.user_id = $user_id
ORDER BY r.rank;
