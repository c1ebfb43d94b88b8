-- Catalogue rows about to be loaded that change the title of an item a catalogue named before, and how many such items exist.
SELECT
    count(*) FILTER (WHERE c.title <> n.title) AS changed,
    (SELECT count(*) FROM catalog WHERE source <> 'synthesized') AS known
FROM classified_catalog AS n
JOIN catalog AS c USING (item_id)
WHERE n.reason IS NULL AND c.source <> 'synthesized';
