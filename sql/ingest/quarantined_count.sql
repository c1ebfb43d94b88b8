-- Classified rows with a reason.
SELECT count(*) FROM classified_interactions WHERE reason IS NOT NULL;
