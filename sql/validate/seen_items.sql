-- Ranked rows recommending an item the user has already interacted with.
SELECT r.* EXCLUDE (run_date)
FROM ranked AS r
SEMI JOIN interactions AS i USING (user_id, item_id)
WHERE r.run_date = $run_date
ORDER BY r.user_id, r.rank;
