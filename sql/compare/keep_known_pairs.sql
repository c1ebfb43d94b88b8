-- Evaluation: forget every interaction the model may not know (the held-out pairs), so LLM
-- prompts never show a test item. `eval_known` is the registered frame of known pairs.
DELETE FROM interactions AS i
WHERE NOT EXISTS (SELECT 1 FROM eval_known AS k WHERE k.user_id = i.user_id AND k.item_id = i.item_id);
