-- Ranked rows of a run_date whose candidates were rebuilt are stale.
DELETE FROM ranked WHERE run_date = $run_date;
