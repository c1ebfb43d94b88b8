-- The recommendations of the first few users of a night, with titles.
SELECT r.user_id, r.rank, c.title, round(r.score, 4) AS score, r.ranker, r.explanation
FROM ranked AS r
JOIN catalog AS c USING (item_id)
WHERE r.run_date = $run_date AND r.rank <= $k
  AND r.user_id IN (SELECT DISTINCT user_id FROM ranked WHERE run_date = $run_date ORDER BY user_id LIMIT $users)
ORDER BY r.user_id, r.rank;
