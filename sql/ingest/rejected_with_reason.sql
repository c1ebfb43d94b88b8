-- Rejected lines after the header that will be quarantined (a line of blanks only is skipped, like an empty line).
SELECT count(*) FROM rejected_lines WHERE line_number > $header_lines AND reason IS NOT NULL;
