-- Users with candidates on the run's date but no ranked rows.
SELECT user_id, count(*) AS candidates
FROM candidates AS c
WHERE c.run_date = $run_date
  AND NOT EXISTS (SELECT 1 FROM ranked AS r WHERE r.run_date = $run_date AND r.user_id = c.user_id)
GROUP BY user_id
ORDER BY user_id;
