-- Items seen in interactions but absent from any catalogue get a placeholder entry.
INSERT INTO catalog
SELECT DISTINCT item_id, 'Item ' || item_id, [], NULL, 'synthesized'
FROM classified_interactions
WHERE reason IS NULL
ON CONFLICT DO NOTHING;
