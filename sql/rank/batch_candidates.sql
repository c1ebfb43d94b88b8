-- The candidates of a batch of users with display titles (schema.sql) of the items and of
-- their evidence (in evidence order), and the first genre of the item that the lead evidence
-- item shares (catalogue genres of at most 40 characters). Only the first $max_rank in ALS order when that is set
-- (the als ranker keeps the top K; the llm ranker re-orders them all).
WITH batch AS (
    SELECT * FROM candidates
    WHERE run_date = $run_date AND user_id IN (SELECT unnest($user_ids)) AND ($max_rank IS NULL OR als_rank <= $max_rank)
),
evidence AS (
    SELECT user_id, item_id,
           generate_subscripts(evidence_item_ids, 1) AS position,
           unnest(evidence_item_ids) AS evidence_id
    FROM batch
),
evidence_titles AS (
    SELECT e.user_id, e.item_id, list(display_title(c.title) ORDER BY e.position) AS evidence_titles
    FROM evidence AS e
    JOIN catalog AS c ON c.item_id = e.evidence_id
    GROUP BY ALL
)
SELECT
    b.user_id, b.item_id, b.als_rank, b.als_score, b.source, b.model_version,
    b.evidence_item_ids, display_title(i.title) AS title, coalesce(t.evidence_titles, []) AS evidence_titles,
    [g FOR g IN i.genres IF list_contains(lead.genres, g) AND length(g) <= 40][1] AS shared_genre
FROM batch AS b
JOIN catalog AS i USING (item_id)
LEFT JOIN evidence_titles AS t USING (user_id, item_id)
LEFT JOIN catalog AS lead ON lead.item_id = b.evidence_item_ids[1]
ORDER BY b.user_id, b.als_rank;
