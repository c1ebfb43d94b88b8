-- Every decodable line of a text file, in order (blank lines kept as NULL); lines that cannot be
-- decoded in $encoding or are longer than $max_line_bytes go to the fresh table $rejects_table with their line number.
CREATE OR REPLACE TEMP TABLE kept_lines AS
SELECT row_number() OVER () AS k, line
FROM read_csv(
    $path,
    columns = {'line': 'VARCHAR'},
    header = false, delim = '\0', quote = '', escape = '',
    auto_detect = false, encoding = $encoding, max_line_size = $max_line_bytes,
    store_rejects = true, rejects_table = $rejects_table, rejects_scan = $rejects_table || '_scans'
);
