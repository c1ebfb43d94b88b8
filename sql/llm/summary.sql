-- The LLM accounting of one run_date so far: calls, cache hits, tokens, retries, 429s,
-- fallbacks, hallucinated ids, latency percentiles, prompt size vs the original recipe.
WITH calls AS (
    SELECT
        count(*) FILTER (WHERE outcome <> 'cache_hit') AS calls,
        count(*) FILTER (WHERE outcome = 'cache_hit') AS cache_hits,
        coalesce(sum(prompt_tokens) FILTER (WHERE outcome <> 'cache_hit'), 0) AS prompt_tokens,
        coalesce(sum(completion_tokens) FILTER (WHERE outcome <> 'cache_hit'), 0) AS completion_tokens,
        count(*) FILTER (WHERE attempt > 0 AND outcome <> 'cache_hit') AS retries,
        count(*) FILTER (WHERE http_status = 429) AS rate_limited,
        count(*) FILTER (WHERE outcome IN ('server_error', 'timeout', 'error', 'too_large')) AS failed_attempts,
        quantile_cont(latency_ms, 0.5) FILTER (WHERE outcome <> 'cache_hit') AS latency_p50_ms,
        quantile_cont(latency_ms, 0.95) FILTER (WHERE outcome <> 'cache_hit') AS latency_p95_ms
    FROM llm_calls
    WHERE run_date = $run_date
),
users AS (
    SELECT
        count(*) AS users,
        count(*) FILTER (WHERE ranker = 'als_fallback') AS fallbacks,
        coalesce(sum(hallucinated_ids), 0) AS hallucinated_ids,
        coalesce(sum(duplicate_ids), 0) AS duplicate_ids,
        coalesce(sum(missing_ids), 0) AS missing_ids,
        coalesce(sum(stripped_citations), 0) AS stripped_citations,
        coalesce(sum(explanation_fallbacks), 0) AS explanation_fallbacks,
        coalesce(sum(repair_retries), 0) AS repair_retries,
        coalesce(sum(prompt_tokens_est), 0) AS prompt_tokens_est,
        coalesce(sum(recipe_tokens_est), 0) AS recipe_tokens_est
    FROM llm_users
    WHERE run_date = $run_date
)
SELECT $run_date::DATE AS run_date, *,
       prompt_tokens_est / nullif(recipe_tokens_est, 0) AS prompt_vs_recipe
FROM calls, users;
