-- One pass over the plainly typed rows of a file (`plain_rows`, nothing materialised): how many were read, how many
-- are not plain, how many plain rows repeat the (user_id, item_id, ts) of another (counted by one hash per row: a hash
-- collision only sends the file to the row-by-row path), and the time span of the plain rows. A file whose rows are
-- all plain and distinct (the common case) is loaded straight from them.
SELECT
    count(*) AS rows_read,
    count(*) FILTER (WHERE reason IS NOT NULL) AS not_plain,
    count(*) FILTER (WHERE reason IS NULL) - count(DISTINCT hash(user_id, item_id, ts)) FILTER (WHERE reason IS NULL) AS repeats,
    min(ts) FILTER (WHERE reason IS NULL) AS first_ts,
    max(ts) FILTER (WHERE reason IS NULL) AS last_ts
FROM plain_rows;
