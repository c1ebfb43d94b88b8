-- A home from before interaction_loads: the file of each load, from its rows (then home/drop_interaction_source).
INSERT OR IGNORE INTO interaction_loads
SELECT loaded_at, any_value(source) FROM interactions GROUP BY loaded_at;
