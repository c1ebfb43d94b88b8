-- The source this home was built from (no row: not recorded yet).
SELECT kind, location FROM home_source;
