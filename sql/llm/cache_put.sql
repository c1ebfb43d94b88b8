-- Keep an answer as soon as it arrives, so a crashed run resumes without paying again.
INSERT OR REPLACE INTO llm_cache
VALUES ($request_key, $model, $prompt_version, $response_format, $content, $refusal, $finish_reason,
        $prompt_tokens, $completion_tokens, now()::TIMESTAMP);
