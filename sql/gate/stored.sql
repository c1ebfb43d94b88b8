-- The gate decision already taken for this run_date (a rerun reuses it and makes no canary calls).
SELECT * EXCLUDE (run_date, decided_at) FROM gate_runs WHERE run_date = $run_date;
