-- Per-user outcomes of one batch (registered as new_llm_users).
INSERT INTO llm_users BY NAME
SELECT $run_date::DATE AS run_date, *, now()::TIMESTAMP AS recorded_at FROM new_llm_users;
