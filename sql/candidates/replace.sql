-- This run's candidates replace any earlier attempt for the same run_date.
DELETE FROM candidates WHERE run_date = $run_date;
