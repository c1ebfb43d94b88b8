-- A row with the (user_id, item_id, timestamp) of an earlier row of the same file is a duplicate. Candidates are
-- found by an aggregate over one hash per row (no window over every row, nothing sorted when there is no duplicate),
-- then compared exactly.
UPDATE classified_interactions AS c
SET reason = 'duplicate of an earlier row (user_id, item_id, timestamp)'
FROM (
    SELECT line_number
    FROM (
        SELECT line_number, min(line_number) OVER (PARTITION BY user_id, item_id, ts) AS first_line
        FROM classified_interactions
        WHERE hash(user_id, item_id, ts) IN (
            SELECT hash(user_id, item_id, ts) AS key
            FROM classified_interactions
            WHERE user_id IS NOT NULL AND item_id IS NOT NULL AND ts IS NOT NULL
            GROUP BY key
            HAVING count(*) > 1
        )
    )
    WHERE line_number > first_line
) AS d
WHERE c.line_number = d.line_number AND c.reason IS NULL;
