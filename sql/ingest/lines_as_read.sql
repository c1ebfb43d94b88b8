-- Kept lines are numbered as read when no line was rejected (the common case: no join needed).
CREATE OR REPLACE TEMP VIEW raw_lines AS
SELECT k AS line_number, line FROM kept_lines;
