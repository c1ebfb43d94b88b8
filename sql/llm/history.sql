-- Each user's history for the LLM prompt, compressed: liked items (latest_ratings in schema.sql;
-- the ALS evidence of the user's candidates first, then the most recent), disliked items
-- (strongest first), a genre profile of the likes, and the 300 most recent titles (display titles; only to
-- measure the original recipe's prompt size).
WITH latest AS (
    SELECT * FROM latest_ratings($like_threshold) WHERE user_id IN (SELECT unnest($user_ids))
),
evidence AS (
    SELECT DISTINCT user_id, unnest(evidence_item_ids) AS item_id
    FROM candidates
    WHERE run_date = $run_date AND user_id IN (SELECT unnest($user_ids))
),
rated AS (
    SELECT l.user_id, l.item_id, l.rating, l.ts, display_title(c.title) AS title, c.genres, l.liked,
           e.item_id IS NOT NULL AS is_evidence
    FROM latest AS l
    JOIN catalog AS c USING (item_id)
    LEFT JOIN evidence AS e USING (user_id, item_id)
),
ordered AS (
    SELECT *,
           CASE WHEN liked
                THEN row_number() OVER (PARTITION BY user_id, liked ORDER BY is_evidence DESC, ts DESC, rating DESC, item_id)
                ELSE row_number() OVER (PARTITION BY user_id, liked ORDER BY rating ASC, ts DESC, item_id)
           END AS position,
           row_number() OVER (PARTITION BY user_id ORDER BY ts DESC, item_id) AS recent_position
    FROM rated
),
genre_counts AS (
    SELECT user_id, genre, count(*) AS n
    FROM (SELECT user_id, unnest(genres) AS genre FROM rated WHERE liked)
    GROUP BY ALL
),
profiles AS (
    SELECT user_id, list(genre ORDER BY n DESC, genre)[1:3] AS top_genres
    FROM genre_counts
    GROUP BY user_id
)
SELECT
    o.user_id,
    coalesce(list({'item_id': o.item_id, 'title': o.title} ORDER BY o.position)
             FILTER (WHERE o.liked AND o.position <= $max_liked), []) AS liked,
    coalesce(list({'item_id': o.item_id, 'title': o.title} ORDER BY o.position)
             FILTER (WHERE NOT o.liked AND o.position <= $max_disliked), []) AS disliked,
    count(*) FILTER (WHERE o.liked) AS n_liked,
    count(*) FILTER (WHERE NOT o.liked) AS n_disliked,
    coalesce(any_value(p.top_genres), []) AS top_genres,
    coalesce(list(o.title ORDER BY o.recent_position) FILTER (WHERE o.recent_position <= 300), []) AS recipe_titles
FROM ordered AS o
LEFT JOIN profiles AS p USING (user_id)
GROUP BY o.user_id
ORDER BY o.user_id;
