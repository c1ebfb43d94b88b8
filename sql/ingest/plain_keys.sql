-- One row per plainly typed row of a file (`plain_rows`): one hash of its (user_id, item_id, ts) when it is plain (else
-- NULL) and its timestamp. Counted in polars (tasks/ingest.py: PlainCheck): how many rows were read and are not plain,
-- how many plain rows repeat the key of another (a hash collision only sends the file to the row-by-row path) and the
-- time span of the plain rows; counting distinct keys there costs a fraction of a DuckDB aggregate over every row.
SELECT CASE WHEN reason IS NULL THEN hash(user_id, item_id, ts) END AS key, ts
FROM plain_rows;
