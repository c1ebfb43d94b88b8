-- Likes per catalogue item (items nobody liked count 0; likes as in schema.sql, latest rating only):
-- the fallback for users ALS cannot serve.
SELECT c.item_id, count(l.item_id) AS likes
FROM catalog AS c
LEFT JOIN likes($like_threshold) AS l USING (item_id)
GROUP BY c.item_id
ORDER BY c.item_id;
