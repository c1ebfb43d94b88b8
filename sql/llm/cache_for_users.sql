-- The cached answers a batch of users may hit: those of requests each user made on this run_date (a
-- resumed or repeated night) or on the last earlier run_date it made any (candidates unchanged since).
WITH calls AS (
    SELECT user_id, run_date, request_key
    FROM llm_calls
    WHERE user_id IN (SELECT unnest($user_ids)) AND run_date <= $run_date
),
last_earlier AS (
    SELECT user_id, max(run_date) AS run_date
    FROM calls
    WHERE run_date < $run_date
    GROUP BY user_id
),
keys AS (
    SELECT request_key FROM calls WHERE run_date = $run_date
    UNION
    SELECT request_key FROM calls JOIN last_earlier USING (user_id, run_date)
)
SELECT request_key, response_format, content, refusal, finish_reason, prompt_tokens, completion_tokens
FROM llm_cache
WHERE request_key IN (SELECT request_key FROM keys);
