-- The staging table of an interactions file is dropped in the ingest's own transaction: it is never committed.
DROP TABLE IF EXISTS classified_interactions;
