-- How much each user's candidates changed since the user was last ranked by the LLM: the number
-- of this run's candidates that were not among the candidates of that earlier run
-- (users never ranked by the LLM: last_llm_date NULL, every candidate counts as new).
WITH current_candidates AS (
    SELECT user_id, item_id FROM candidates WHERE run_date = $run_date
),
last_llm AS (
    SELECT user_id, max(run_date) AS last_llm_date
    FROM ranked
    WHERE ranker = 'llm' AND run_date < $run_date
    GROUP BY user_id
),
previous AS (
    SELECT c.user_id, c.item_id
    FROM candidates AS c
    JOIN last_llm AS l ON c.user_id = l.user_id AND c.run_date = l.last_llm_date
)
SELECT cur.user_id, any_value(l.last_llm_date) AS last_llm_date,
       count(*) FILTER (WHERE p.item_id IS NULL)::INTEGER AS new_candidates
FROM current_candidates AS cur
LEFT JOIN last_llm AS l USING (user_id)
LEFT JOIN previous AS p USING (user_id, item_id)
GROUP BY cur.user_id
ORDER BY cur.user_id;
