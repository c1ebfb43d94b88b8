-- Items of the rows this load added to interactions that no catalogue names get a placeholder entry.
INSERT INTO catalog
SELECT item_id, 'Item ' || item_id, [], NULL, 'synthesized'
FROM (SELECT DISTINCT item_id FROM interactions WHERE loaded_at = $loaded_at)
WHERE item_id NOT IN (SELECT item_id FROM catalog);
