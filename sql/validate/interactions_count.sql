-- The row_count check's batch: one row, how many interactions are stored.
SELECT count(*) AS row_count FROM interactions;
