-- A batch's per-user outcomes replace any earlier attempt for the same users and run_date.
DELETE FROM llm_users WHERE run_date = $run_date AND user_id IN (SELECT unnest($user_ids));
