INSERT INTO candidates
SELECT $run_date, user_id, item_id, als_rank, als_score, source, evidence_item_ids, $model_version
FROM new_candidates;
