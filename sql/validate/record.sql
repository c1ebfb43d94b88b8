-- Store the outcomes of one validation (registered as new_validation_runs).
INSERT INTO validation_runs BY NAME
SELECT * FROM new_validation_runs;
