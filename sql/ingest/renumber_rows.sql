-- Exact line numbers for the classified rows that will be reported (a reason or a note): the CSV reader numbers
-- the rows it keeps, so the k-th kept row comes after every skipped line j (rejected, in `rejected_lines`, or
-- empty, in $empty_lines; in line order) with fewer than k kept lines before it: its number is k + that count.
UPDATE classified_interactions AS c
SET line_number = n.exact
FROM (
    WITH skipped AS (
        SELECT line_number FROM rejected_lines
        UNION
        SELECT unnest($empty_lines::BIGINT[])
    ),
    ranked AS (
        SELECT line_number - row_number() OVER (ORDER BY line_number) AS kept_before, row_number() OVER (ORDER BY line_number) AS j
        FROM skipped
    ),
    steps AS (
        SELECT kept_before, max(j) AS j FROM ranked GROUP BY kept_before
    )
    SELECT r.line_number AS k, r.line_number + coalesce(s.j, 0) AS exact
    FROM classified_interactions AS r
    ASOF LEFT JOIN steps AS s ON r.line_number > s.kept_before
    WHERE r.reason IS NOT NULL OR r.note IS NOT NULL
) AS n
WHERE c.line_number = n.k;
