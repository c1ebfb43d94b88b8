-- The raw line of every classified row with a reason, read again from `staged_interactions` (the typed pass keeps
-- no text): run only when some row has one, before the rows are renumbered.
UPDATE classified_interactions AS c
SET raw = s.raw
FROM staged_interactions AS s
WHERE c.line_number = s.line_number AND c.reason IS NOT NULL;
