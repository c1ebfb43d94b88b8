-- A row with the (user_id, item_id, timestamp) of an earlier row of the same file is a duplicate: an aggregate
-- over the keys, not a window over every row, so the common case (no duplicate) sorts nothing. Only duplicates
-- read their raw line again from `staged_interactions`.
UPDATE classified_interactions AS c
SET reason = 'duplicate of an earlier row (user_id, item_id, timestamp)', raw = s.raw
FROM (
    SELECT line_number
    FROM classified_interactions
    JOIN (
        SELECT user_id, item_id, ts, min(line_number) AS first_line
        FROM classified_interactions
        WHERE user_id IS NOT NULL AND item_id IS NOT NULL AND ts IS NOT NULL
        GROUP BY ALL
        HAVING count(*) > 1
    ) AS k USING (user_id, item_id, ts)
    WHERE line_number > first_line
) AS d
JOIN staged_interactions AS s USING (line_number)
WHERE c.line_number = d.line_number AND c.reason IS NULL;
