-- Every interactions file this home loaded rows from (to recognise the source of a home that predates home_source).
SELECT DISTINCT source FROM interactions;
