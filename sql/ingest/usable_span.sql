-- The time span of the usable staged rows (bounds the anti-join of ingest/load_interactions).
SELECT min(ts), max(ts) FROM classified_interactions WHERE reason IS NULL;
