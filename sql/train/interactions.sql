-- The latest rating of every (user, item) pair as a like or not (latest_ratings in schema.sql), ordered:
-- the input of training and of "seen" filtering.
SELECT user_id, item_id, liked
FROM latest_ratings($like_threshold)
ORDER BY user_id, item_id;
