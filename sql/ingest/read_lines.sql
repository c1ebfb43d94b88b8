-- Every line of a text file with its exact 1-based line number (blank lines kept as NULL).
CREATE OR REPLACE TEMP TABLE raw_lines AS
SELECT row_number() OVER () AS line_number, line
FROM read_csv(
    $path,
    columns = {'line': 'VARCHAR'},
    header = false, delim = '\0', quote = '', escape = '',
    auto_detect = false, encoding = $encoding
);
