-- Candidates already stored for this run_date from the given model (a resumed run reuses them).
SELECT source, count(DISTINCT user_id) AS users, count(*) AS rows
FROM candidates
WHERE run_date = $run_date AND model_version = $model_version
GROUP BY source;
