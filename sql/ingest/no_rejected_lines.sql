-- A typed source (Parquet) has no undecodable lines.
CREATE OR REPLACE TEMP TABLE rejected_lines (line_number BIGINT, raw VARCHAR, reason VARCHAR);
