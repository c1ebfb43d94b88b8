-- Whether an earlier load holds rows in [$first_ts, $last_ts], the time span of the rows this load inserted.
SELECT EXISTS (
    SELECT 1 FROM interactions
    WHERE ts BETWEEN $first_ts AND $last_ts AND loaded_at <> $loaded_at
);
