-- Ranked rows whose item is not in the catalogue (a hallucinated or stale id).
SELECT r.* EXCLUDE (run_date)
FROM ranked AS r
ANTI JOIN catalog AS c USING (item_id)
WHERE r.run_date = $run_date
ORDER BY r.user_id, r.rank;
