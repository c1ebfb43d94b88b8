-- The rows published for a run_date: top K per user with titles (run_date lives in the path).
SELECT
    r.user_id, r.rank, r.item_id, c.title, r.score, r.explanation, r.evidence_item_ids,
    r.ranker, r.model_version, r.prompt_version
FROM ranked AS r
JOIN catalog AS c USING (item_id)
WHERE r.run_date = $run_date AND r.rank <= $k
ORDER BY r.user_id, r.rank;
