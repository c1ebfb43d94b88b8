-- Canary file: the attempts (and cache hits) of this run_date's canary, copied into the home's llm_calls.
SELECT * EXCLUDE (run_date, recorded_at) FROM llm_calls WHERE run_date = $run_date ORDER BY recorded_at, user_id, attempt;
