-- This run_date's gate decision.
INSERT OR REPLACE INTO gate_runs BY NAME
SELECT $run_date::DATE AS run_date, *, now()::TIMESTAMP AS decided_at FROM new_gate_run;
