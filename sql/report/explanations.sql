-- Explanation quality of one night (the explanation_quality view of sql/views.sql).
SELECT distinct_explanation_share, evidence_items_per_user, llm_citations, llm_faithfulness
FROM explanation_quality
WHERE run_date = $run_date;
