-- A batch's ranked rows replace any earlier attempt for the same users and run_date.
DELETE FROM ranked WHERE run_date = $run_date AND user_id IN (SELECT unnest($user_ids));
