-- The rows of a file with a row that is not plain, classified row by row (`classified_rows`) and materialised (in the
-- DuckDB file: compressed, spillable) so that duplicates, raw lines and exact line numbers can be added to them;
-- dropped inside the ingest's own transaction.
CREATE OR REPLACE TABLE classified_interactions AS
SELECT * FROM classified_rows;
