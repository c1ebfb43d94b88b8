-- Answers no llm_calls row names: stored by the answer keeper of a run killed before their batch was
-- (rankers/llm.py answer_keeper). Any batch of the rerun may hit them, so none is paid for twice.
SELECT request_key, response_format, content, refusal, finish_reason, prompt_tokens, completion_tokens
FROM llm_cache AS c
WHERE NOT EXISTS (SELECT 1 FROM llm_calls AS k WHERE k.request_key = c.request_key);
