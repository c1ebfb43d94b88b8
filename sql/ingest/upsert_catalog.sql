-- Usable catalogue rows; the newest load wins for an item already known.
INSERT INTO catalog
SELECT item_id, title, genres, year, $source
FROM classified_catalog
WHERE reason IS NULL
ON CONFLICT (item_id) DO UPDATE SET
    title = excluded.title, genres = excluded.genres, year = excluded.year, source = excluded.source;
