-- Above this, DuckDB's joins, aggregates, sorts and temp tables spill to the temp directory instead of growing the process.
SET memory_limit = $memory_limit;
