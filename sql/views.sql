-- Views for analysts working in the DuckDB file (the Parquet under recommendations/ holds the same rows).

-- The newest published night, with titles.
CREATE OR REPLACE VIEW latest_recommendations AS
SELECT r.run_date, r.user_id, r.rank, r.item_id, c.title, c.genres, r.score, r.explanation,
       r.evidence_item_ids, r.ranker, r.model_version, r.prompt_version
FROM ranked AS r
JOIN catalog AS c USING (item_id)
WHERE r.run_date = (SELECT max(run_date) FROM published_runs);

-- Every published night, one row per user and rank.
CREATE OR REPLACE VIEW published_recommendations AS
SELECT r.*
FROM ranked AS r
SEMI JOIN published_runs AS p USING (run_date);

-- Quarantined input rows per source and reason.
CREATE OR REPLACE VIEW quarantine_summary AS
SELECT source, reason, count(*) AS rows, min(row_number) AS first_row
FROM quarantine
GROUP BY ALL
ORDER BY rows DESC;

-- Holdout metrics of every model next to the popularity baseline.
CREATE OR REPLACE VIEW model_comparison AS
SELECT m.model_version, r.run_date, r.promoted, m.metric, m.k,
       max(m.value) FILTER (WHERE m.method = 'als') AS als,
       max(m.value) FILTER (WHERE m.method = 'popularity') AS popularity
FROM model_metrics AS m
JOIN model_runs AS r USING (model_version)
GROUP BY ALL
ORDER BY r.run_date DESC, m.metric, m.k;

-- Explanation quality per night: share of distinct explanation texts, distinct history items cited
-- per user (users whose lists cite any), and for LLM rows the share of cited items that are among
-- the ALS top contributors of that item (candidates.evidence_item_ids; NULL without LLM rows).
CREATE OR REPLACE VIEW explanation_quality AS
WITH cited AS (
    SELECT run_date, user_id, item_id, ranker, unnest(evidence_item_ids) AS evidence_id
    FROM ranked
),
per_user AS (
    SELECT run_date, user_id, count(DISTINCT evidence_id) AS evidence_items
    FROM cited
    GROUP BY ALL
),
llm AS (
    SELECT c.run_date, count(*) AS llm_citations,
           avg(list_contains(k.evidence_item_ids, c.evidence_id)::DOUBLE) AS llm_faithfulness
    FROM cited AS c
    JOIN candidates AS k USING (run_date, user_id, item_id)
    WHERE c.ranker = 'llm'
    GROUP BY ALL
),
texts AS (
    SELECT run_date, count(*) AS rows, count(DISTINCT explanation) / count(*) AS distinct_explanation_share
    FROM ranked
    GROUP BY ALL
)
SELECT t.run_date, t.rows, t.distinct_explanation_share,
       (SELECT avg(evidence_items) FROM per_user AS u WHERE u.run_date = t.run_date) AS evidence_items_per_user,
       coalesce(l.llm_citations, 0) AS llm_citations, l.llm_faithfulness
FROM texts AS t
LEFT JOIN llm AS l USING (run_date)
ORDER BY t.run_date;

-- The LLM quality gate night by night: ALS vs LLM order vs the chosen blend on held-out likes (drift shows here).
CREATE OR REPLACE VIEW gate_drift AS
SELECT r.run_date, r.open, r.chosen_weight, r.users, r.als_ndcg,
       max(c.ndcg_at_10) FILTER (WHERE c.method = 'blend' AND c.blend_weight = 1) AS llm_ndcg,
       r.best_ndcg AS chosen_ndcg, r.lower_bound, r.model, r.prompt_version
FROM gate_runs AS r
LEFT JOIN gate_canary AS c USING (run_date)
GROUP BY ALL
ORDER BY r.run_date;
