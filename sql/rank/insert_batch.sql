INSERT INTO ranked BY NAME
SELECT $run_date AS run_date, * FROM new_ranked;
