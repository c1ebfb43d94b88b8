-- This run_date's canary table for the run artifact: ALS first, then the blends by weight.
SELECT CASE WHEN method = 'als' THEN 'als' ELSE format('blend {}', blend_weight) END AS "order",
       users, ndcg_at_10 AS "ndcg@10", mean_diff AS "vs als"
FROM gate_canary
WHERE run_date = $run_date
ORDER BY method = 'blend', blend_weight;
