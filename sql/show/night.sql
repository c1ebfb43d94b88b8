-- The published night $run_date, or the latest published one when $run_date is NULL (no row: not published).
SELECT run_date
FROM published_runs
WHERE run_date = coalesce($run_date::DATE, (SELECT max(run_date) FROM published_runs));
