-- The COMMENT ON statements of the registered dictionary_entries (object, kind, column_name, description)
-- for the tables, views and columns that exist in this database. COMMENT ON takes no bound parameters:
-- the names and text come from tasks/dictionary.py only, and are quoted here.
WITH existing AS (
    SELECT table_name AS object, column_name FROM duckdb_columns() WHERE NOT internal AND database_name = current_database()
    UNION ALL
    SELECT table_name, NULL FROM duckdb_tables() WHERE NOT temporary AND database_name = current_database()
    UNION ALL
    SELECT view_name, NULL FROM duckdb_views() WHERE NOT internal AND NOT temporary AND database_name = current_database()
)
SELECT 'COMMENT ON ' || CASE WHEN e.column_name IS NULL THEN e.kind ELSE 'COLUMN' END
       || ' "' || replace(e.object, '"', '""') || '"'
       || coalesce('."' || replace(e.column_name, '"', '""') || '"', '')
       || ' IS ''' || replace(e.description, '''', '''''') || '''' AS statement
FROM dictionary_entries AS e
SEMI JOIN existing AS x ON x.object = e.object AND x.column_name IS NOT DISTINCT FROM e.column_name
WHERE e.kind IN ('TABLE', 'VIEW')
ORDER BY e.object, e.column_name NULLS FIRST;
