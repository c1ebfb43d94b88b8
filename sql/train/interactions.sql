-- The latest rating of every (user, item) pair and whether it is a like (latest_ratings in schema.sql):
-- the input of training and of "seen" filtering.
SELECT user_id, item_id, rating, liked
FROM latest_ratings($like_threshold)
ORDER BY user_id, item_id;
