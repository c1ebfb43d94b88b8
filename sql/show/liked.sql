-- A user's most liked history items (latest rating per item above $like_threshold): highest rating, then newest.
SELECT display_title(c.title) AS title, l.rating, l.ts::DATE AS rated_on
FROM latest_ratings($like_threshold) AS l
JOIN catalog AS c USING (item_id)
WHERE l.user_id = $user_id AND l.liked
ORDER BY l.rating DESC, l.ts DESC, c.title
LIMIT $items;
