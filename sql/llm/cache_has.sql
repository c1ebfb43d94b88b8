-- Which of these request keys are answered already.
SELECT request_key FROM llm_cache WHERE request_key IN (SELECT unnest($request_keys));
