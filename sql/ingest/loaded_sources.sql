-- Every file this home loaded (to recognise the source of a home that predates home_source).
SELECT DISTINCT source FROM ingested_files;
