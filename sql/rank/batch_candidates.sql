-- The candidates of a batch of users with titles of the items and of their evidence.
WITH evidence AS (
    SELECT c.user_id, c.item_id, list(e.title ORDER BY x.pos) AS evidence_titles
    FROM candidates AS c,
        unnest(c.evidence_item_ids) WITH ORDINALITY AS x(id, pos)
    JOIN catalog AS e ON e.item_id = x.id
    WHERE c.run_date = $run_date AND c.user_id IN (SELECT unnest($user_ids))
    GROUP BY ALL
)
SELECT
    c.user_id, c.item_id, c.als_rank, c.als_score, c.source, c.model_version,
    c.evidence_item_ids, i.title, coalesce(ev.evidence_titles, []) AS evidence_titles
FROM candidates AS c
JOIN catalog AS i USING (item_id)
LEFT JOIN evidence AS ev USING (user_id, item_id)
WHERE c.run_date = $run_date AND c.user_id IN (SELECT unnest($user_ids))
ORDER BY c.user_id, c.als_rank;
