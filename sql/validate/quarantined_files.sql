-- Files loaded since the previous night's check of $suite whose quarantined share exceeds $max_share.
WITH previous_check AS (
    SELECT coalesce(max(validated_at), TIMESTAMP '-infinity') AS checked_at
    FROM validation_runs
    WHERE suite = $suite AND run_date < $run_date
)
SELECT f.source, f.rows_read, f.rows_quarantined, f.rows_quarantined / f.rows_read AS quarantined_share, f.loaded_at
FROM ingested_files AS f, previous_check AS p
WHERE f.loaded_at > p.checked_at AND f.rows_quarantined > $max_share * f.rows_read
ORDER BY quarantined_share DESC;
