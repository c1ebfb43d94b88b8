-- Kept lines with their exact 1-based line number: the k-th kept line comes after every rejected
-- line j (in line order) with fewer than k good lines before it, so its number is k + that count.
CREATE OR REPLACE TEMP VIEW raw_lines AS
WITH rejected AS (
    SELECT line_number - row_number() OVER (ORDER BY line_number) AS good_before,
           row_number() OVER (ORDER BY line_number) AS j
    FROM rejected_lines
),
steps AS (
    SELECT good_before, max(j) AS j FROM rejected GROUP BY good_before
)
SELECT k + coalesce(s.j, 0) AS line_number, line
FROM kept_lines AS l
ASOF LEFT JOIN steps AS s ON l.k > s.good_before;
