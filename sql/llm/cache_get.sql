-- A cached LLM answer by request key (no rows: not paid for yet).
SELECT response_format, content, refusal, finish_reason, prompt_tokens, completion_tokens
FROM llm_cache
WHERE request_key = $request_key;
