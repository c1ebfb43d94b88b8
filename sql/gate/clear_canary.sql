-- Replace this run_date's canary table.
DELETE FROM gate_canary WHERE run_date = $run_date;
