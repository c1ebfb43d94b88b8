-- Beyond-accuracy figures of the published night $run_date, stored in report_nights (replacing a rerun's).
-- Lists are the ranked rows of a published run_date; a row's ranker is 'popular' when its candidate
-- came from the popularity fallback. Personalisation compares $sample_users users (a fixed hash sample).
INSERT OR REPLACE INTO report_nights
WITH lists AS (
    SELECT r.run_date, r.user_id, r.rank, r.item_id,
           CASE WHEN c.source = 'popular' THEN 'popular' ELSE r.ranker END AS ranker
    FROM ranked AS r
    LEFT JOIN candidates AS c USING (run_date, user_id, item_id)
    WHERE r.run_date IN ($run_date, (SELECT max(run_date) FROM published_runs WHERE run_date < $run_date))
      AND r.run_date IN (SELECT run_date FROM published_runs)
),
tonight AS (SELECT * FROM lists WHERE run_date = $run_date),
previous AS (SELECT * FROM lists WHERE run_date < $run_date),
popularity AS (
    SELECT c.item_id, rank() OVER (ORDER BY count(l.item_id) DESC) AS popularity_rank
    FROM catalog AS c
    LEFT JOIN likes($like_threshold) AS l USING (item_id)
    GROUP BY c.item_id
),
genre_pairs AS (
    SELECT a.user_id,
           len(list_intersect(ga.genres, gb.genres))
             / nullif(len(list_distinct(list_concat(ga.genres, gb.genres))), 0) AS jaccard
    FROM tonight AS a
    JOIN tonight AS b ON a.user_id = b.user_id AND a.rank < b.rank
    JOIN catalog AS ga ON ga.item_id = a.item_id
    JOIN catalog AS gb ON gb.item_id = b.item_id
),
diversity AS (
    SELECT avg(user_diversity) AS diversity
    FROM (SELECT user_id, 1 - avg(jaccard) AS user_diversity FROM genre_pairs GROUP BY user_id)
),
sampled AS (
    SELECT user_id, count(*) AS n
    FROM tonight
    GROUP BY user_id
    ORDER BY hash(user_id), user_id
    LIMIT $sample_users
),
shared AS (
    SELECT a.user_id AS user_a, b.user_id AS user_b, count(*) AS shared
    FROM tonight AS a
    JOIN tonight AS b ON a.item_id = b.item_id AND a.user_id < b.user_id
    WHERE a.user_id IN (SELECT user_id FROM sampled) AND b.user_id IN (SELECT user_id FROM sampled)
    GROUP BY ALL
),
personalisation AS (
    SELECT 1 - coalesce(sum(s.shared / sqrt(na.n * nb.n)), 0)
             / nullif((SELECT count(*) * (count(*) - 1) / 2 FROM sampled), 0) AS personalisation
    FROM shared AS s
    JOIN sampled AS na ON na.user_id = s.user_a
    JOIN sampled AS nb ON nb.user_id = s.user_b
),
churn AS (
    SELECT avg(changed) AS churn
    FROM (
        SELECT t.user_id, 1 - count(p.item_id) / count(*) AS changed
        FROM tonight AS t
        LEFT JOIN previous AS p USING (user_id, item_id)
        WHERE t.user_id IN (SELECT user_id FROM previous)
        GROUP BY t.user_id
    )
),
tokens AS (
    SELECT coalesce(sum(prompt_tokens), 0) AS prompt_tokens, coalesce(sum(completion_tokens), 0) AS completion_tokens
    FROM llm_calls
    WHERE run_date = $run_date AND outcome <> 'cache_hit'
)
SELECT
    $run_date::DATE AS run_date,
    (SELECT max(run_date) FROM previous) AS previous_run_date,
    count(DISTINCT t.user_id) AS users,
    count(*) AS rows,
    (SELECT count(*) FROM catalog) AS catalog_items,
    count(DISTINCT t.item_id) / (SELECT count(*) FROM catalog) AS coverage,
    avg(p.popularity_rank) AS novelty,
    (SELECT diversity FROM diversity) AS diversity,
    (SELECT personalisation FROM personalisation) AS personalisation,
    (SELECT churn FROM churn) AS churn,
    count(*) FILTER (WHERE t.ranker = 'als') AS rows_als,
    count(*) FILTER (WHERE t.ranker = 'llm') AS rows_llm,
    count(*) FILTER (WHERE t.ranker = 'als_fallback') AS rows_als_fallback,
    count(*) FILTER (WHERE t.ranker = 'popular') AS rows_popular,
    (SELECT prompt_tokens FROM tokens) AS llm_prompt_tokens,
    (SELECT completion_tokens FROM tokens) AS llm_completion_tokens,
    ((SELECT prompt_tokens FROM tokens) * $price_input + (SELECT completion_tokens FROM tokens) * $price_output) / 1e6 AS llm_cost,
    now()::TIMESTAMP AS reported_at
FROM tonight AS t
JOIN popularity AS p USING (item_id);
