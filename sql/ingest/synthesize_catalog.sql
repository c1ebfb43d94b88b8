-- Items of the rows this load added to interactions that no catalogue names get a placeholder entry.
INSERT INTO catalog
SELECT DISTINCT item_id, 'Item ' || item_id, [], NULL, 'synthesized'
FROM interactions
WHERE loaded_at = $loaded_at AND source = $source
  AND item_id NOT IN (SELECT item_id FROM catalog);
