-- Append the request attempts of one batch (registered as new_llm_calls).
INSERT INTO llm_calls BY NAME
SELECT $run_date::DATE AS run_date, *, now()::TIMESTAMP AS recorded_at FROM new_llm_calls;
