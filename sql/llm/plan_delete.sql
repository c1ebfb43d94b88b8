-- A new cap plan replaces the run_date's earlier one (other settings).
DELETE FROM llm_plan WHERE run_date = $run_date;
