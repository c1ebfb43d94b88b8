-- A model retrained because its directory was lost replaces its earlier row.
INSERT OR REPLACE INTO model_runs
VALUES ($model_version, $run_date, $trained_at, $params, $n_users, $n_items, $n_likes, $ndcg_at_10, $promoted, $decision);
