-- Every interactions file this home loaded (to recognise the source of a home that predates home_source).
SELECT DISTINCT source FROM interaction_loads;
