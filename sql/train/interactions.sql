-- The latest rating of every (user, item) pair: the input of training and of "seen" filtering.
SELECT user_id, item_id, arg_max(rating, ts) AS rating
FROM interactions
GROUP BY user_id, item_id
ORDER BY user_id, item_id;
