-- The cap plan of a run_date, if one was built with these settings.
SELECT user_id, admitted
FROM llm_plan
WHERE run_date = $run_date AND max_users = $max_users AND model = $model AND prompt_version = $prompt_version;
