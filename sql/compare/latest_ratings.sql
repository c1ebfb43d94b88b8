-- A registered frame `split_ratings` (user_id, item_id, rating, ts) reduced to latest ratings and likes,
-- by the same definition as the nightly run (latest_ratings in schema.sql).
SELECT user_id, item_id, rating, liked
FROM latest_ratings($like_threshold, ratings := 'split_ratings')
ORDER BY user_id, item_id;
