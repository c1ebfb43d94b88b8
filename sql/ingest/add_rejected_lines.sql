-- The rejected lines after the header join the classified rows, with their reason.
INSERT INTO classified_interactions BY NAME
SELECT line_number, raw, reason FROM rejected_lines WHERE line_number > $header_lines AND reason IS NOT NULL;
