-- A batch's new answers (registered as new_llm_cache), stored with the batch by the flow process.
INSERT OR REPLACE INTO llm_cache BY NAME
SELECT *, now()::TIMESTAMP AS created_at FROM new_llm_cache;
