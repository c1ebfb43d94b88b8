-- Likes per catalogue item (items nobody liked count 0): the fallback for users ALS cannot serve.
SELECT c.item_id, count(l.item_id) AS likes
FROM catalog AS c
LEFT JOIN (SELECT item_id FROM interactions WHERE rating > $like_threshold) AS l USING (item_id)
GROUP BY c.item_id
ORDER BY c.item_id;
