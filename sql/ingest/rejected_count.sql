SELECT count(*) FROM rejected_lines;
