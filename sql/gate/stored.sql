-- The gate decision already taken for this run_date with this model and prompt (a rerun reuses it and makes no
-- canary calls; another model or prompt is tested afresh and its decision replaces the night's).
SELECT * EXCLUDE (run_date, decided_at) FROM gate_runs
WHERE run_date = $run_date AND model = $model AND prompt_version = $prompt_version;
