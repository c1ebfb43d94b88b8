-- Replace the cap plan of a run_date (registered as new_llm_plan): uncached users ordered new
-- first, then by most new candidates; the first $max_users of them are admitted.
INSERT INTO llm_plan BY NAME
WITH ordered AS (
    SELECT *,
           CASE WHEN NOT cached THEN row_number() OVER (
               PARTITION BY cached ORDER BY last_llm_date IS NOT NULL, new_candidates DESC, user_id) END AS priority
    FROM new_llm_plan
)
SELECT $run_date::DATE AS run_date, user_id, cached, last_llm_date, new_candidates, priority,
       cached OR priority <= $max_users AS admitted,
       $max_users::INTEGER AS max_users, $model AS model, $prompt_version AS prompt_version
FROM ordered;
