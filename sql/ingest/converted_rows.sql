-- Loadable interaction rows whose value was converted (they carry a note).
SELECT count(*) FROM classified_interactions WHERE reason IS NULL AND note IS NOT NULL;
