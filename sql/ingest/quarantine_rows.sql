-- Unusable rows of a classified staging table, with their line and reason.
INSERT INTO quarantine
SELECT $source, line_number, reason, raw, $loaded_at
FROM query_table($classified)
WHERE reason IS NOT NULL
ON CONFLICT DO NOTHING;
