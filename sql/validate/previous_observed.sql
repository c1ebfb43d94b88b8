-- What each check of $suite observed on the latest earlier night (its last attempt).
SELECT expectation, observed_value
FROM validation_runs
WHERE suite = $suite
  AND run_date = (SELECT max(run_date) FROM validation_runs WHERE suite = $suite AND run_date < $run_date)
QUALIFY row_number() OVER (PARTITION BY expectation ORDER BY validated_at DESC) = 1;
