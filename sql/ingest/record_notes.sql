-- Loaded rows that were converted (e.g. millisecond epochs), counted per note.
INSERT INTO ingest_notes
SELECT $sha256, $source, note, count(*), min(line_number), $loaded_at
FROM classified_interactions
WHERE reason IS NULL AND note IS NOT NULL
GROUP BY note;
